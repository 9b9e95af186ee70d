variable "region" {
  type        = string
  description = "The region's key in the root module's `regions`, used in messages and alert names."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.region))
    error_message = "region must be 2 to 24 lowercase letters, digits or '-', got \"${var.region}\"."
  }
}

variable "name" {
  type        = string
  description = "Name of the Function App; the plan, identity, Application Insights and alerts are named after it."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,58}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 60 lowercase letters, digits or '-', got \"${var.name}\"."
  }
}

variable "storage_account_name" {
  type        = string
  description = "Name of the region's storage account (the host's AzureWebJobsStorage and the deployment package)."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3 to 24 lowercase letters or digits, got \"${var.storage_account_name}\"."
  }
}

variable "location" {
  type        = string
  description = "The Azure region of every resource of this region."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]+$", var.location))
    error_message = "location must be an Azure region name such as westeurope, got \"${var.location}\"."
  }
}

variable "subscription_id" {
  type        = string
  description = "The subscription of the region's resources: the Function App's request names its resource group by id."

  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID, got \"${var.subscription_id}\"."
  }
}

variable "resource_group_name" {
  type        = string
  description = "The existing resource group of this region's resources."

  validation {
    condition     = length(var.resource_group_name) > 0
    error_message = "resource_group_name must be set."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of this region."
  default     = {}
}

variable "python_version" {
  type        = string
  description = "Python version of the Function App."

  validation {
    condition     = contains(["3.11", "3.12", "3.13"], var.python_version)
    error_message = "python_version must be 3.11, 3.12 or 3.13, got \"${var.python_version}\"."
  }
}

variable "instance_memory_in_mb" {
  type        = number
  description = "Memory of each Flex Consumption instance."

  validation {
    condition     = contains([512, 2048, 4096], var.instance_memory_in_mb)
    error_message = "instance_memory_in_mb must be 512, 2048 or 4096, got ${var.instance_memory_in_mb}."
  }
}

variable "maximum_instance_count" {
  type        = number
  description = "Most instances the app scales out to."

  validation {
    condition     = var.maximum_instance_count >= 40 && var.maximum_instance_count <= 1000 && floor(var.maximum_instance_count) == var.maximum_instance_count
    error_message = "maximum_instance_count must be a whole number from 40 (Flex Consumption's lowest maximum for Python) to 1000, got ${var.maximum_instance_count}."
  }
}

variable "always_ready_instance_count" {
  type        = number
  description = "Instances kept warm for each of the app's two change-feed functions (the lease watch gets none); 0 for none."

  validation {
    condition     = var.always_ready_instance_count >= 0 && var.always_ready_instance_count <= 10
    error_message = "always_ready_instance_count must be from 0 to 10, got ${var.always_ready_instance_count}."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet for VNet integration (delegated to Microsoft.App/environments), or null for none."
  default     = null

  validation {
    condition     = var.subnet_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.Network/virtualNetworks/[^/]+/subnets/[^/]+$", var.subnet_id))
    error_message = "subnet_id must be a subnet id, got \"${coalesce(var.subnet_id, "null")}\"."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Existing Log Analytics workspace for Application Insights, or null to create one for this region."
  default     = null

  validation {
    condition     = var.log_analytics_workspace_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(?i:microsoft\\.operationalinsights)/workspaces/[^/]+$", var.log_analytics_workspace_id))
    error_message = "log_analytics_workspace_id must be a workspace id, got \"${coalesce(var.log_analytics_workspace_id, "null")}\"."
  }
}

variable "cosmosdb_account_id" {
  type        = string
  description = "Resource id of the Cosmos DB account."

  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.DocumentDB/databaseAccounts/[a-z0-9-]{3,44}$", var.cosmosdb_account_id))
    error_message = "cosmosdb_account_id must be a Cosmos DB account id, got \"${var.cosmosdb_account_id}\"."
  }
}

variable "cosmosdb_account_endpoint" {
  type        = string
  description = "The Cosmos DB account's endpoint, for COSMOSDB__accountEndpoint."

  validation {
    condition     = can(regex("^https://[^/]+/?$", var.cosmosdb_account_endpoint))
    error_message = "cosmosdb_account_endpoint must be an https:// URL, got \"${var.cosmosdb_account_endpoint}\"."
  }
}

variable "key_vault_id" {
  type        = string
  description = "Resource id of the Key Vault that holds key_vault_secrets, or null when there are none."
  default     = null

  validation {
    condition     = var.key_vault_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.KeyVault/vaults/[a-zA-Z0-9-]{3,24}$", var.key_vault_id))
    error_message = "key_vault_id must be a Key Vault id, got \"${coalesce(var.key_vault_id, "null")}\"."
  }
}

variable "key_vault_secrets" {
  type        = map(string)
  description = "App settings whose values are Key Vault secrets: setting name => secret name. Each becomes a Key Vault reference."
  default     = {}

  validation {
    condition     = alltrue([for setting, secret in var.key_vault_secrets : can(regex("^[0-9a-zA-Z-]{1,127}$", secret))])
    error_message = "key_vault_secrets: secret names are 1 to 127 letters, digits or '-', got ${jsonencode(var.key_vault_secrets)}."
  }
}

variable "app_settings" {
  type        = map(string)
  description = "The app's own settings (README.md, \"Settings\"), without the connections this module adds. The identity's Cosmos DB grants are scoped to the database and containers these name."

  validation {
    condition     = alltrue([for name in ["COSMOSDB_NAME", "COSMOSDB_WHISKS_CONTAINER", "COSMOSDB_SUBJECTS_CONTAINER", "COSMOSDB_LEASE_CONTAINER", "CLUSTER_ID", "KAFKA_HOSTS"] : contains(keys(var.app_settings), name)])
    error_message = "app_settings must hold COSMOSDB_NAME, the three COSMOSDB_*_CONTAINER settings, CLUSTER_ID and KAFKA_HOSTS; missing: ${join(", ", [for name in ["COSMOSDB_NAME", "COSMOSDB_WHISKS_CONTAINER", "COSMOSDB_SUBJECTS_CONTAINER", "COSMOSDB_LEASE_CONTAINER", "CLUSTER_ID", "KAFKA_HOSTS"] : name if !contains(keys(var.app_settings), name)])}."
  }

  validation {
    condition     = length(setintersection(keys(var.app_settings), ["COSMOSDB", "KAFKA_SASL_PASSWORD", "AzureWebJobsStorage"])) == 0
    error_message = "app_settings must not carry a connection string or password (${join(", ", setintersection(keys(var.app_settings), ["COSMOSDB", "KAFKA_SASL_PASSWORD", "AzureWebJobsStorage"]))}): connections use the identity, passwords key_vault_secrets."
  }

  # As the app refuses them at load (cache_invalidator/settings.py): the shared default of
  # COSMOSDB_START_FROM_BEGINNING reaches a region only here.
  validation {
    condition     = lookup(var.app_settings, "COSMOSDB_CHANGE_FEED_MODE", "LatestVersion") != "AllVersionsAndDeletes" || (lookup(var.app_settings, "COSMOSDB_START_FROM_BEGINNING", "false") != "true" && !contains(keys(var.app_settings), "COSMOSDB_START_FROM_TIME"))
    error_message = "app_settings of cluster ${lookup(var.app_settings, "CLUSTER_ID", "?")}: COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes starts from now or from its leases only, so COSMOSDB_START_FROM_BEGINNING=true and COSMOSDB_START_FROM_TIME are refused beside it (cosmosdb_start_from_beginning, cosmosdb_start_from_time)."
  }
}

variable "alert_action_group_id" {
  type        = string
  description = "Action group the alerts notify."

  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(?i:microsoft\\.insights)/actionGroups/[^/]+$", var.alert_action_group_id))
    error_message = "alert_action_group_id must be an action group id, got \"${var.alert_action_group_id}\"."
  }
}

variable "alert_lag_threshold_seconds" {
  type        = number
  description = "Alert when a batch's lag_seconds goes above this."

  validation {
    condition     = var.alert_lag_threshold_seconds > 0
    error_message = "alert_lag_threshold_seconds must be above 0, got ${var.alert_lag_threshold_seconds}."
  }
}

variable "alert_failed_batches_threshold" {
  type        = number
  description = "Alert when more failed batches than this are logged in one window."

  validation {
    condition     = var.alert_failed_batches_threshold >= 0
    error_message = "alert_failed_batches_threshold must be at least 0, got ${var.alert_failed_batches_threshold}."
  }
}

variable "alert_window" {
  type        = string
  description = "Evaluation frequency and window of the alert queries (ISO 8601)."

  validation {
    condition     = contains(["PT1M", "PT5M", "PT10M", "PT15M", "PT30M", "PT45M", "PT1H"], var.alert_window)
    error_message = "alert_window must be one of PT1M, PT5M, PT10M, PT15M, PT30M, PT45M or PT1H, got \"${var.alert_window}\"."
  }
}

variable "alert_watch_silence_window" {
  type        = string
  description = "Alert when the app logs no lease watch line that read the leases for this long (ISO 8601)."

  validation {
    condition     = contains(["PT5M", "PT10M", "PT15M", "PT30M", "PT45M", "PT1H"], var.alert_watch_silence_window)
    error_message = "alert_watch_silence_window must be one of PT5M, PT10M, PT15M, PT30M, PT45M or PT1H, got \"${var.alert_watch_silence_window}\"."
  }
}

variable "soft_delete_ttl_seconds" {
  type        = number
  description = "OpenWhisk's soft-delete TTL in seconds: the oldest-pending-change alert fires at 90 % of it."

  validation {
    condition     = var.soft_delete_ttl_seconds >= 3600 && floor(var.soft_delete_ttl_seconds) == var.soft_delete_ttl_seconds
    error_message = "soft_delete_ttl_seconds must be a whole number of at least 3600, got ${var.soft_delete_ttl_seconds}."
  }
}
