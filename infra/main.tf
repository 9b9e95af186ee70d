# One Function App per region, over one shared Cosmos DB account. Adding a region is
# one entry in var.regions (see docs/DEPLOY.md); for_each over that map means that
# adding or removing one never renames another.

provider "azurerm" {
  subscription_id = var.subscription_id
  features {}
}

# Each region's Function App (modules/region). Like azurerm 5, it registers no resource
# providers: docs/DEPLOY.md lists those to register.
provider "azapi" {
  subscription_id            = var.subscription_id
  skip_provider_registration = true
}

locals {
  # /subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.DocumentDB/databaseAccounts/<name>
  cosmosdb_account_name           = element(split("/", var.cosmosdb_account_id), 8)
  cosmosdb_account_resource_group = element(split("/", var.cosmosdb_account_id), 4)
  cosmosdb_account_endpoint       = coalesce(var.cosmosdb_account_endpoint, "https://${local.cosmosdb_account_name}.documents.azure.com:443/")

  # Each region's lease prefixes, as the app computes them (cache_invalidator/settings.py):
  # the all-versions-and-deletes feed's end in -avad, as a lease records its mode.
  lease_prefixes = {
    for key, region in var.regions : key => {
      whisks   = "${region.cluster_id}-${var.cosmosdb_containers.whisks}${region.cosmosdb_change_feed_mode == "AllVersionsAndDeletes" ? "-avad" : ""}"
      subjects = "${region.cluster_id}-${var.cosmosdb_containers.subjects}${region.cosmosdb_change_feed_mode == "AllVersionsAndDeletes" ? "-avad" : ""}"
    }
  }

  # Names derived from name_prefix and the region's key unless the region names them.
  # A storage account name has at most 24 lowercase letters and digits: the key is kept
  # whole and the prefix cut, so that two regions never get the same name by the cut.
  names = {
    for key, region in var.regions : key => {
      function_app = coalesce(region.function_app_name, "${var.name_prefix}-${key}")
      storage_account = coalesce(region.storage_account_name, join("", [
        substr(replace(var.name_prefix, "-", ""), 0, max(0, 24 - length(replace(key, "-", "")))),
        replace(key, "-", ""),
      ]))
    }
  }

  # Key Vault secrets each region's app resolves, by app setting.
  region_secrets = {
    for key, region in var.regions : key => merge(
      region.kafka_sasl_password_secret_name == null ? {} : { KAFKA_SASL_PASSWORD = region.kafka_sasl_password_secret_name },
      { for property, secret in region.kafka_producer_secret_names : "KAFKA_PRODUCER_${upper(replace(property, ".", "_"))}" => secret },
    )
  }
}

# Created once for all regions: with a managed identity the Cosmos DB trigger cannot
# create it (the data-plane role does not cover containers). Partition key /id is
# what the Functions extension requires of a lease container.
resource "azurerm_cosmosdb_sql_container" "lease" {
  count = var.create_lease_container ? 1 : 0

  name                = var.cosmosdb_containers.lease
  resource_group_name = local.cosmosdb_account_resource_group
  account_name        = local.cosmosdb_account_name
  database_name       = var.cosmosdb_database_name
  partition_key_paths = ["/id"]
}

# The operators' own sign-in (check, replay): Data Reader on each of the three containers,
# nothing on the database or the account. The database's _rid is taken from a container's,
# so neither command reads the database itself.
resource "azurerm_cosmosdb_sql_role_assignment" "operator_data_reader" {
  for_each = {
    for pair in setproduct(keys(var.operator_principal_ids), keys(var.cosmosdb_containers)) :
    "${pair[0]}/${pair[1]}" => { principal_id = var.operator_principal_ids[pair[0]], container = var.cosmosdb_containers[pair[1]] }
  }

  resource_group_name = local.cosmosdb_account_resource_group
  account_name        = local.cosmosdb_account_name
  role_definition_id  = "${var.cosmosdb_account_id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000001"
  principal_id        = each.value.principal_id
  scope               = "${var.cosmosdb_account_id}/dbs/${var.cosmosdb_database_name}/colls/${each.value.container}"

  depends_on = [azurerm_cosmosdb_sql_container.lease]
}

module "region" {
  source   = "./modules/region"
  for_each = var.regions
  # Its identity's grant on the lease container, and its triggers, need the container.
  depends_on = [azurerm_cosmosdb_sql_container.lease]

  region               = each.key
  name                 = local.names[each.key].function_app
  storage_account_name = local.names[each.key].storage_account
  location             = coalesce(each.value.location, each.key)
  subscription_id      = var.subscription_id
  resource_group_name  = coalesce(each.value.resource_group_name, var.resource_group_name)
  tags                 = var.tags

  python_version              = var.python_version
  instance_memory_in_mb       = var.instance_memory_in_mb
  maximum_instance_count      = coalesce(each.value.maximum_instance_count, var.maximum_instance_count)
  always_ready_instance_count = coalesce(each.value.always_ready_instance_count, var.always_ready_instance_count)
  subnet_id                   = each.value.subnet_id
  log_analytics_workspace_id  = var.log_analytics_workspace_id

  cosmosdb_account_id       = var.cosmosdb_account_id
  cosmosdb_account_endpoint = local.cosmosdb_account_endpoint
  key_vault_id              = var.key_vault_id
  key_vault_secrets         = local.region_secrets[each.key]

  # Every setting the app reads (README.md, "Settings"), from the region's entry or the
  # shared default. Settings the region leaves unset are left out, so that the app's
  # own default applies; the region module adds the identity-based connections.
  app_settings = merge(
    {
      COSMOSDB_NAME                     = var.cosmosdb_database_name
      COSMOSDB_WHISKS_CONTAINER         = var.cosmosdb_containers.whisks
      COSMOSDB_SUBJECTS_CONTAINER       = var.cosmosdb_containers.subjects
      COSMOSDB_LEASE_CONTAINER          = var.cosmosdb_containers.lease
      COSMOSDB_CREATE_LEASE_CONTAINER   = "false"
      COSMOSDB_START_FROM_BEGINNING     = tostring(coalesce(each.value.cosmosdb_start_from_beginning, var.cosmosdb_start_from_beginning))
      COSMOSDB_CHANGE_FEED_MODE         = each.value.cosmosdb_change_feed_mode
      COSMOSDB_MAX_ITEMS_PER_INVOCATION = tostring(var.cosmosdb_max_items_per_invocation)
      COSMOSDB_FEED_POLL_DELAY_MS       = tostring(var.cosmosdb_feed_poll_delay_ms)
      CLUSTER_ID                        = each.value.cluster_id
      KAFKA_HOSTS                       = each.value.kafka_hosts
      KAFKA_TOPIC                       = coalesce(each.value.kafka_topic, var.kafka_topic)
      KAFKA_DELIVERY_TIMEOUT_SECONDS    = tostring(var.kafka_delivery_timeout_seconds)
      INVALIDATE_AUTH_KEYS              = tostring(var.invalidate_auth_keys)
      INVALIDATION_INSTANCE_ID          = var.invalidation_instance_id
      # Every region's cluster id: a region that never started is reported too.
      LEASE_WATCH_REGIONS         = join(",", sort([for key, other in var.regions : other.cluster_id]))
      LEASE_WATCH_STALE_SECONDS   = tostring(var.lease_watch_stale_seconds)
      LEASE_WATCH_PENDING_SECONDS = tostring(var.lease_watch_pending_seconds)
      # Read by `check` only (its --min-soft-delete-ttl), from the settings an operator downloads.
      OPENWHISK_SOFT_DELETE_TTL_SECONDS = tostring(var.soft_delete_ttl_seconds)
    },
    var.lease_watch_schedule == null ? {} : { LEASE_WATCH_SCHEDULE = var.lease_watch_schedule },
    length(each.value.cosmosdb_preferred_locations) == 0 ? {} : { COSMOSDB_PREFERRED_LOCATIONS = join(",", each.value.cosmosdb_preferred_locations) },
    each.value.cosmosdb_start_from_time == null ? {} : { COSMOSDB_START_FROM_TIME = each.value.cosmosdb_start_from_time },
    each.value.kafka_security_protocol == null ? {} : { KAFKA_SECURITY_PROTOCOL = each.value.kafka_security_protocol },
    each.value.kafka_sasl_mechanism == null ? {} : { KAFKA_SASL_MECHANISM = each.value.kafka_sasl_mechanism },
    each.value.kafka_sasl_username == null ? {} : { KAFKA_SASL_USERNAME = each.value.kafka_sasl_username },
    each.value.kafka_ssl_ca_location == null ? {} : { KAFKA_SSL_CA_LOCATION = each.value.kafka_ssl_ca_location },
    { for property, value in each.value.kafka_producer_properties : "KAFKA_PRODUCER_${upper(replace(property, ".", "_"))}" => value },
  )

  alert_action_group_id          = var.action_group_id
  alert_lag_threshold_seconds    = var.alert_lag_threshold_seconds
  alert_failed_batches_threshold = var.alert_failed_batches_threshold
  alert_window                   = var.alert_window

  alert_watch_silence_window = var.alert_watch_silence_window
  soft_delete_ttl_seconds    = var.soft_delete_ttl_seconds
}
