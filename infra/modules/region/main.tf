# One region: a Flex Consumption Function App running the cache invalidator against
# this region's Kafka, with a user-assigned identity for Cosmos DB, its storage and
# Application Insights, and alerts on the app's own batch log line.

locals {
  cosmosdb_account_name           = element(split("/", var.cosmosdb_account_id), 8)
  cosmosdb_account_resource_group = element(split("/", var.cosmosdb_account_id), 4)
  # Empty without a vault; the precondition on the app then names what is missing.
  key_vault_id   = var.key_vault_id == null ? "" : var.key_vault_id
  key_vault_name = var.key_vault_id == null ? "" : element(split("/", var.key_vault_id), 8)

  # Cosmos DB's built-in data-plane roles, whose ids are the same in every account: Data
  # Reader (read metadata, items, queries and change feeds) and Data Contributor (that, and
  # write items). Each is scoped to one container, named by the region's own settings, so
  # that the grants follow what the app reads (docs/DEPLOY.md, "Who may do what").
  cosmosdb_data_reader_role_definition_id      = "${var.cosmosdb_account_id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000001"
  cosmosdb_data_contributor_role_definition_id = "${var.cosmosdb_account_id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002"
  cosmosdb_database_scope                      = "${var.cosmosdb_account_id}/dbs/${var.app_settings["COSMOSDB_NAME"]}"
  cosmosdb_watched_containers = {
    whisks   = var.app_settings["COSMOSDB_WHISKS_CONTAINER"]
    subjects = var.app_settings["COSMOSDB_SUBJECTS_CONTAINER"]
  }
  cosmosdb_lease_container = var.app_settings["COSMOSDB_LEASE_CONTAINER"]

  # The names function_app.py gives its functions; Flex Consumption scales (and keeps
  # warm) each non-HTTP function on its own, named `function:<name>`. A new function
  # gets its name here; infra/tests hold this list to function_app.py's.
  function_names = ["invalidate_whisks", "invalidate_subjects"]
  always_ready = [
    for name in local.function_names : { name = "function:${name}", instanceCount = var.always_ready_instance_count }
    if var.always_ready_instance_count > 0
  ]

  # Versionless references: a rotated secret reaches the app within a day, or at once
  # on a restart.
  key_vault_references = {
    for setting, secret in var.key_vault_secrets : setting => "@Microsoft.KeyVault(VaultName=${local.key_vault_name};SecretName=${secret})"
  }

  app_settings = merge(var.app_settings, local.key_vault_references, {
    # The Cosmos DB extension's identity-based connection "COSMOSDB" (function_app.py).
    COSMOSDB__accountEndpoint = var.cosmosdb_account_endpoint
    COSMOSDB__credential      = "managedidentity"
    COSMOSDB__clientId        = azurerm_user_assigned_identity.this.client_id
    # The host's own storage, by identity: the account allows no shared keys.
    AzureWebJobsStorage__accountName = azurerm_storage_account.this.name
    AzureWebJobsStorage__credential  = "managedidentity"
    AzureWebJobsStorage__clientId    = azurerm_user_assigned_identity.this.client_id
    # Application Insights allows no instrumentation-key ingestion either.
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.this.client_id};Authorization=AAD"
  })

  workspace_id = var.log_analytics_workspace_id != null ? var.log_analytics_workspace_id : azurerm_log_analytics_workspace.this[0].id

  # Known at plan, unlike the resource's id: the workbook (../../workbook.tf) names it in its queries.
  application_insights_name = "${var.name}-insights"
  application_insights_id   = "/subscriptions/${var.subscription_id}/resourceGroups/${var.resource_group_name}/providers/Microsoft.Insights/components/${local.application_insights_name}"
}

resource "azurerm_user_assigned_identity" "this" {
  name                = "${var.name}-id"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_storage_account" "this" {
  name                            = var.storage_account_name
  resource_group_name             = var.resource_group_name
  location                        = var.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  https_traffic_only_enabled      = true
  min_tls_version                 = "TLS1_2"
  shared_access_key_enabled       = false
  allow_nested_items_to_be_public = false
  default_to_oauth_authentication = true
  tags                            = var.tags
}

# Flex Consumption runs the package from this container.
resource "azurerm_storage_container" "deployment" {
  name                  = "app-package"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# The host's blobs (AzureWebJobsStorage) and the deployment package.
resource "azurerm_role_assignment" "storage_blob_data_owner" {
  scope                = azurerm_storage_account.this.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  principal_type       = "ServicePrincipal"
}

# The triggers read the change feeds of whisks and subjects (and the containers' metadata,
# their feed ranges) and never write them: Data Reader on exactly those two containers.
resource "azurerm_cosmosdb_sql_role_assignment" "data_reader" {
  for_each = local.cosmosdb_watched_containers

  resource_group_name = local.cosmosdb_account_resource_group
  account_name        = local.cosmosdb_account_name
  role_definition_id  = local.cosmosdb_data_reader_role_definition_id
  principal_id        = azurerm_user_assigned_identity.this.principal_id
  scope               = "${local.cosmosdb_database_scope}/colls/${each.value}"
}

# The processors create, read, renew, checkpoint and delete their leases (and the store's
# .info and .lock), and the lease watch queries every region's: Data Contributor on exactly
# the lease container.
resource "azurerm_cosmosdb_sql_role_assignment" "lease_data_contributor" {
  resource_group_name = local.cosmosdb_account_resource_group
  account_name        = local.cosmosdb_account_name
  role_definition_id  = local.cosmosdb_data_contributor_role_definition_id
  principal_id        = azurerm_user_assigned_identity.this.principal_id
  scope               = "${local.cosmosdb_database_scope}/colls/${local.cosmosdb_lease_container}"

  # A deployment made before these grants holds Data Contributor on the whole database,
  # under this resource's former address (the moved block below). Its scope cannot change
  # in place, so Terraform replaces it: created first, after the readers (depends_on), and
  # the database-wide grant deleted last, so that the triggers never lack access
  # (docs/DEPLOY.md, "Narrowing an existing deployment's grants").
  lifecycle {
    create_before_destroy = true
  }

  depends_on = [azurerm_cosmosdb_sql_role_assignment.data_reader]
}

moved {
  from = azurerm_cosmosdb_sql_role_assignment.data_contributor
  to   = azurerm_cosmosdb_sql_role_assignment.lease_data_contributor
}

resource "azurerm_log_analytics_workspace" "this" {
  count = var.log_analytics_workspace_id == null ? 1 : 0

  name                = "${var.name}-logs"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = 30
  tags                = var.tags
}

resource "azurerm_application_insights" "this" {
  name                         = local.application_insights_name
  resource_group_name          = var.resource_group_name
  location                     = var.location
  workspace_id                 = local.workspace_id
  application_type             = "other"
  local_authentication_enabled = false
  tags                         = var.tags
}

resource "azurerm_role_assignment" "monitoring_metrics_publisher" {
  scope                = azurerm_application_insights.this.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_service_plan" "this" {
  name                = "${var.name}-plan"
  resource_group_name = var.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = var.tags
}

# The Function App as the request Azure gets (Microsoft.Web/sites, api-version
# 2023-12-01): the body is what is sent, so the plan shows it whole and azapi checks it
# against the API's schema. azurerm_function_app_flex_consumption added to every request
# an exact AzureWebJobsStorage, with an empty key under identity auth, that no plan
# showed and that wins over the identity settings below (docs/DEPLOY.md).
resource "azapi_resource" "function_app" {
  type      = "Microsoft.Web/sites@2023-12-01"
  name      = var.name
  parent_id = "/subscriptions/${var.subscription_id}/resourceGroups/${var.resource_group_name}"
  location  = var.location
  tags      = var.tags

  # The user-assigned identity reaches Cosmos DB, storage and Application Insights: it
  # exists, with its roles, before the app starts. The system-assigned one resolves the
  # Key Vault references (docs/DEPLOY.md).
  identity {
    type         = "SystemAssigned, UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.this.id]
  }

  body = {
    kind = "functionapp,linux"
    properties = merge(
      {
        serverFarmId        = azurerm_service_plan.this.id
        enabled             = true
        httpsOnly           = true
        clientCertEnabled   = false
        publicNetworkAccess = "Enabled"

        functionAppConfig = {
          # Flex Consumption runs the package from this container, read with the identity.
          deployment = {
            storage = {
              type  = "blobContainer"
              value = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.deployment.name}"
              authentication = {
                type                           = "UserAssignedIdentity"
                userAssignedIdentityResourceId = azurerm_user_assigned_identity.this.id
              }
            }
          }
          runtime = {
            name    = "python"
            version = var.python_version
          }
          scaleAndConcurrency = {
            maximumInstanceCount = var.maximum_instance_count
            instanceMemoryMB     = var.instance_memory_in_mb
            alwaysReady          = local.always_ready
          }
        }

        siteConfig = {
          # Every app setting, and no other: what the plan shows is what the site holds.
          appSettings = [
            for name, value in merge(local.app_settings, {
              APPLICATIONINSIGHTS_CONNECTION_STRING = azurerm_application_insights.this.connection_string
            }) : { name = name, value = value }
          ]
          minTlsVersion    = "1.2"
          scmMinTlsVersion = "1.2"
          # A private Kafka is reached through the VNet, its DNS included.
          vnetRouteAllEnabled = var.subnet_id != null
        }
      },
      # VNet integration only where the region names a subnet.
      { for name, value in { virtualNetworkSubnetId = var.subnet_id } : name => value if value != null },
    )
  }

  response_export_values = ["properties.defaultHostName"]

  lifecycle {
    precondition {
      condition     = length(var.key_vault_secrets) == 0 || var.key_vault_id != null
      error_message = "region ${var.region} names Key Vault secrets (${join(", ", values(var.key_vault_secrets))}) but key_vault_id is not set."
    }
    # The Cosmos DB extension's listener throws at start when both are set ("Only one of
    # StartFromBeginning or StartFromTime can be used"), and the app refuses them too. The flag
    # is the one the region ends up with: its own, or the shared default.
    precondition {
      condition     = !(contains(keys(var.app_settings), "COSMOSDB_START_FROM_TIME") && lower(lookup(var.app_settings, "COSMOSDB_START_FROM_BEGINNING", "false")) == "true")
      error_message = "region ${var.region}: cosmosdb_start_from_time and cosmosdb_start_from_beginning = true exclude each other (COSMOSDB_START_FROM_TIME and COSMOSDB_START_FROM_BEGINNING: the Cosmos DB extension refuses the two, and the region's triggers would not start). The flag is true here from the region's own cosmosdb_start_from_beginning or, when the region leaves it unset, from the shared one: set the region's cosmosdb_start_from_beginning = false, or remove its cosmosdb_start_from_time."
    }
  }

  depends_on = [
    azurerm_role_assignment.storage_blob_data_owner,
    azurerm_role_assignment.monitoring_metrics_publisher,
    azurerm_cosmosdb_sql_role_assignment.data_reader,
    azurerm_cosmosdb_sql_role_assignment.lease_data_contributor,
  ]
}

# No publishing with the site's basic-auth credentials: deployments use Entra tokens.
resource "azapi_resource" "scm_basic_publishing" {
  type      = "Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01"
  name      = "scm"
  parent_id = azapi_resource.function_app.id

  body = {
    properties = {
      allow = false
    }
  }
}

# Least privilege: the app may read its own region's secrets and nothing else.
resource "azurerm_role_assignment" "key_vault_secrets_user" {
  for_each = toset(values(var.key_vault_secrets))

  scope                = "${local.key_vault_id}/secrets/${each.value}"
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azapi_resource.function_app.identity[0].principal_id
  principal_type       = "ServicePrincipal"
}

# The log queries, shared with the workbook (modules/queries).
module "queries" {
  source = "../queries"
}

# The alert rules on each region's Application Insights: two on the batch line, and the
# lease watch's four. Each region's app watches every region's leases, so a region that
# stopped (no batch line, so neither batch-line alert fires for it) is reported by the
# others; and a region whose own watch falls silent is the alert of its own. Each
# description says what to run, and where docs/OPERATIONS.md explains it (infra/tests
# hold the sections to that file).
locals {
  # A change still pending at 90 % of the soft-delete TTL leaves a tenth of it to act before
  # the delete leaves the feed: an hour of a 10 h TTL, three days of 30 d.
  pending_change_alert_seconds = floor(var.soft_delete_ttl_seconds * 9 / 10)
  check_command                = "`python -m cache_invalidator check --settings <region>.settings.json`"

  alert_rules = {
    failed_batches = {
      severity     = 1
      display_name = "change batches failed"
      description  = "Region ${var.region}'s app logged failed change batches: its invalidations wait for Kafka and are retried. Run ${local.check_command} with ${var.region}'s settings (its Kafka section) and read the batches' exceptions. What to do: docs/OPERATIONS.md#change-batches-failed"
      window       = var.alert_window
      query        = module.queries.alert_queries.failed_batches
      aggregation  = "Count"
      measure      = null
      operator     = "GreaterThan"
      threshold    = var.alert_failed_batches_threshold
      dimensions   = ["container"]
    }
    lag = {
      severity     = 2
      display_name = "invalidations lag"
      description  = "A change batch reached region ${var.region}'s Kafka more than ${var.alert_lag_threshold_seconds} s after its newest change: that region's caches are that stale. Open the workbook's lag panel and run ${local.check_command} with ${var.region}'s settings. What to do: docs/OPERATIONS.md#invalidations-lag"
      window       = var.alert_window
      query        = module.queries.alert_queries.lag_seconds
      aggregation  = "Maximum"
      measure      = "lag_seconds"
      operator     = "GreaterThan"
      threshold    = var.alert_lag_threshold_seconds
      dimensions   = ["container"]
    }
    stale_region = {
      severity     = 1
      display_name = "a region stopped renewing its leases"
      description  = "Region ${var.region}'s lease watch reports a region whose leases nobody renewed within LEASE_WATCH_STALE_SECONDS (stale), or an expected region without leases (missing): that region's caches get no invalidations. Find the region in the alert's dimensions, look at its Function App and restart it; run ${local.check_command} with that region's settings. What to do: docs/OPERATIONS.md#a-region-stopped-renewing-its-leases"
      window       = var.alert_window
      query        = module.queries.alert_queries.stale_regions
      aggregation  = "Count"
      measure      = null
      operator     = "GreaterThan"
      threshold    = 0
      dimensions   = ["region", "container"]
    }
    behind_region = {
      severity     = 2
      display_name = "a region is behind"
      description  = "Region ${var.region}'s lease watch reports a region whose oldest change not yet handed to its function is older than LEASE_WATCH_PENDING_SECONDS (behind): its batches fail and are retried, or it cannot keep up. Read that region's failed batches and run ${local.check_command} with its settings. What to do: docs/OPERATIONS.md#a-region-is-behind"
      window       = var.alert_window
      query        = module.queries.alert_queries.behind_regions
      aggregation  = "Count"
      measure      = null
      operator     = "GreaterThan"
      threshold    = 0
      dimensions   = ["region", "container"]
    }
    watch_silent = {
      severity     = 1
      display_name = "no lease watch line"
      description  = "Region ${var.region}'s app logged no lease watch line that read the leases for ${var.alert_watch_silence_window}: the app is stopped, or its watch cannot read the lease container. Check the other regions' stale-region alerts for ${var.region}, read its unreadable lines' reason, and run ${local.check_command} with its settings. What to do: docs/OPERATIONS.md#no-lease-watch-line"
      window       = var.alert_watch_silence_window
      query        = module.queries.alert_queries.watch_lines
      aggregation  = "Count"
      measure      = null
      operator     = "LessThan"
      threshold    = 1
      dimensions   = []
    }
    oldest_pending_change = {
      severity     = 1
      display_name = "a region's oldest pending change nears the soft-delete TTL"
      description  = "Region ${var.region}'s lease watch reports a change not yet handed to a region's function for more than ${local.pending_change_alert_seconds} s, 90 % of the soft-delete TTL of ${var.soft_delete_ttl_seconds} s: once a soft delete expires unread, that region never invalidates it. Get the region reading, then `python -m cache_invalidator replay --container all --since <time>` with its settings. What to do: docs/OPERATIONS.md#a-pending-change-nears-the-soft-delete-ttl"
      window       = var.alert_window
      query        = module.queries.alert_queries.oldest_pending_change
      aggregation  = "Maximum"
      measure      = "oldest_pending_seconds"
      operator     = "GreaterThan"
      threshold    = local.pending_change_alert_seconds
      dimensions   = ["region", "container"]
    }
  }
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "alert" {
  for_each = local.alert_rules

  name                 = "${var.name}-${replace(each.key, "_", "-")}"
  display_name         = "Cache invalidator ${var.region}: ${each.value.display_name}"
  description          = each.value.description
  resource_group_name  = var.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  severity             = each.value.severity
  evaluation_frequency = each.value.window
  window_duration      = each.value.window

  criteria {
    query                   = each.value.query
    time_aggregation_method = each.value.aggregation
    metric_measure_column   = each.value.measure
    operator                = each.value.operator
    threshold               = each.value.threshold

    dynamic "dimension" {
      for_each = each.value.dimensions
      content {
        name     = dimension.value
        operator = "Include"
        values   = ["*"]
      }
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  action {
    action_groups = [var.alert_action_group_id]
  }

  auto_mitigation_enabled = true
  tags                    = var.tags
}

# Each rule was a resource of its own before they became one resource over local.alert_rules:
# the two batch-line rules first, then the lease watch's three beside them.
moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.failed_batches
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["failed_batches"]
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.lag
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["lag"]
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.stale_region
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["stale_region"]
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.watch_silent
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["watch_silent"]
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.oldest_pending_change
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["oldest_pending_change"]
}
