# One region: a Flex Consumption Function App running the cache invalidator against
# this region's Kafka, with a user-assigned identity for Cosmos DB, its storage and
# Application Insights, and alerts on the app's own batch log line.

locals {
  cosmosdb_account_name           = element(split("/", var.cosmosdb_account_id), 8)
  cosmosdb_account_resource_group = element(split("/", var.cosmosdb_account_id), 4)
  # Empty without a vault; the precondition on the app then names what is missing.
  key_vault_id   = var.key_vault_id == null ? "" : var.key_vault_id
  key_vault_name = var.key_vault_id == null ? "" : element(split("/", var.key_vault_id), 8)

  # Cosmos DB Built-in Data Contributor: read and write items, which the trigger needs
  # for its leases. A built-in data-plane role, so its id is the same in every account.
  cosmosdb_data_contributor_role_definition_id = "${var.cosmosdb_account_id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002"
  cosmosdb_role_scope                          = "${var.cosmosdb_account_id}/dbs/${var.cosmosdb_database_name}"

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

  # The app logs one line per change batch (cache_invalidator/handler.py):
  #   Change batch container=whisks outcome=failed documents=12 ... lag_seconds=1.84 ...
  # With the host's built-in logging only the text reaches Application Insights, so the
  # fields are extracted from it. infra/tests/ applies these same patterns to the app's line.
  batch_line_filter    = "traces | where message startswith \"Change batch \""
  container_pattern    = "\\bcontainer=(\\S+)"
  outcome_pattern      = "\\boutcome=(\\S+)"
  lag_seconds_pattern  = "\\blag_seconds=([0-9.]+)"
  failed_batches_query = "${local.batch_line_filter} | extend container = extract(@\"${local.container_pattern}\", 1, message), outcome = extract(@\"${local.outcome_pattern}\", 1, message) | where outcome == \"failed\" | project timestamp, container"
  lag_seconds_query    = "${local.batch_line_filter} | extend container = extract(@\"${local.container_pattern}\", 1, message), lag_seconds = todouble(extract(@\"${local.lag_seconds_pattern}\", 1, message)) | where isnotnull(lag_seconds) | project timestamp, container, lag_seconds"

  # The lease watch logs one line per region and container it sees in the shared lease
  # container, every run (cache_invalidator/lease_watch.py):
  #   Lease watch watcher=westeurope region=eastus container=whisks status=stale ... oldest_pending_seconds=12.5 ...
  # infra/tests/ applies these patterns to the app's own line too.
  watch_line_filter            = "traces | where message startswith \"Lease watch \""
  watch_region_pattern         = "\\bregion=(\\S+)"
  watch_status_pattern         = "\\bstatus=(\\S+)"
  watch_oldest_pending_pattern = "\\boldest_pending_seconds=([0-9.]+)"
  stale_regions_query          = "${local.watch_line_filter} | extend region = extract(@\"${local.watch_region_pattern}\", 1, message), container = extract(@\"${local.container_pattern}\", 1, message), status = extract(@\"${local.watch_status_pattern}\", 1, message) | where status in (\"stale\", \"missing\") | project timestamp, region, container"
  watch_lines_query            = "${local.watch_line_filter} | extend status = extract(@\"${local.watch_status_pattern}\", 1, message) | where status != \"unreadable\" | project timestamp"
  oldest_pending_change_query  = "${local.watch_line_filter} | extend region = extract(@\"${local.watch_region_pattern}\", 1, message), container = extract(@\"${local.container_pattern}\", 1, message), oldest_pending_seconds = todouble(extract(@\"${local.watch_oldest_pending_pattern}\", 1, message)) | where isnotnull(oldest_pending_seconds) | project timestamp, region, container, oldest_pending_seconds"
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

resource "azurerm_cosmosdb_sql_role_assignment" "data_contributor" {
  resource_group_name = local.cosmosdb_account_resource_group
  account_name        = local.cosmosdb_account_name
  role_definition_id  = local.cosmosdb_data_contributor_role_definition_id
  principal_id        = azurerm_user_assigned_identity.this.principal_id
  scope               = local.cosmosdb_role_scope
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
  name                         = "${var.name}-insights"
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
    azurerm_cosmosdb_sql_role_assignment.data_contributor,
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

# The alert rules on each region's Application Insights: two on the batch line, and the
# lease watch's three. Each region's app watches every region's leases, so a region that
# stopped (no batch line, so neither batch-line alert fires for it) is reported by the
# others; and a region whose own watch falls silent is the alert of its own.
locals {
  alert_rules = {
    failed_batches = {
      severity     = 1
      display_name = "change batches failed"
      description  = "The app logged failed change batches: invalidations of region ${var.region} wait for Kafka and are retried."
      window       = var.alert_window
      query        = local.failed_batches_query
      aggregation  = "Count"
      measure      = null
      operator     = "GreaterThan"
      threshold    = var.alert_failed_batches_threshold
      dimensions   = ["container"]
    }
    lag = {
      severity     = 2
      display_name = "invalidations lag"
      description  = "A change batch reached region ${var.region}'s Kafka more than ${var.alert_lag_threshold_seconds} s after its newest change."
      window       = var.alert_window
      query        = local.lag_seconds_query
      aggregation  = "Maximum"
      measure      = "lag_seconds"
      operator     = "GreaterThan"
      threshold    = var.alert_lag_threshold_seconds
      dimensions   = ["container"]
    }
    stale_region = {
      severity     = 1
      display_name = "a region stopped renewing its leases"
      description  = "Region ${var.region}'s lease watch reports a region whose leases were not renewed within LEASE_WATCH_STALE_SECONDS, or an expected region without leases: that region's caches get no invalidations."
      window       = var.alert_window
      query        = local.stale_regions_query
      aggregation  = "Count"
      measure      = null
      operator     = "GreaterThan"
      threshold    = 0
      dimensions   = ["region", "container"]
    }
    watch_silent = {
      severity     = 1
      display_name = "no lease watch line"
      description  = "Region ${var.region}'s app logged no lease watch line that read the leases for ${var.alert_watch_silence_window}: the app is stopped, or cannot read the lease container."
      window       = var.alert_watch_silence_window
      query        = local.watch_lines_query
      aggregation  = "Count"
      measure      = null
      operator     = "LessThan"
      threshold    = 1
      dimensions   = []
    }
    oldest_pending_change = {
      severity     = 1
      display_name = "a region's oldest pending change nears the soft-delete TTL"
      description  = "Region ${var.region}'s lease watch reports a change not yet handed to a region's function for more than ${var.alert_pending_change_age_seconds} s: past the soft-delete TTL that region loses the delete for good."
      window       = var.alert_window
      query        = local.oldest_pending_change_query
      aggregation  = "Maximum"
      measure      = "oldest_pending_seconds"
      operator     = "GreaterThan"
      threshold    = var.alert_pending_change_age_seconds
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

# The two batch-line alerts were resources of their own before the lease watch's came.
moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.failed_batches
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["failed_batches"]
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.lag
  to   = azurerm_monitor_scheduled_query_rules_alert_v2.alert["lag"]
}
