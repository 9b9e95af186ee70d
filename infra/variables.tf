# Inputs of the deployment. Adding a region is one entry in `regions`; everything
# else is shared by all regions. Every app setting the Function App reads is listed
# in README.md's settings tables; the variables below say which one they become.

variable "subscription_id" {
  type        = string
  description = "The subscription that holds the Function Apps (azurerm 4 and later require it to be named)."

  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID, got \"${var.subscription_id}\"."
  }
}

variable "resource_group_name" {
  type        = string
  description = "An existing resource group for every region's resources, unless a region names its own resource_group_name."

  validation {
    condition     = can(regex("^[-\\w\\.\\(\\)]{1,89}[-\\w\\(\\)]$", var.resource_group_name))
    error_message = "resource_group_name must be 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.', got \"${var.resource_group_name}\"."
  }
}

variable "name_prefix" {
  type        = string
  description = "Start of every resource name: the Function App of region `westeurope` is `<name_prefix>-westeurope`, its storage account `<name_prefix><region>` without dashes, the prefix cut so that the name has at most 24 characters. A region may name its own function_app_name and storage_account_name."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 20 lowercase letters, digits or '-', starting with a letter and not ending in '-', got \"${var.name_prefix}\"."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource this deployment creates."
  default     = {}
}

# --- Shared parts that exist already ------------------------------------------

variable "cosmosdb_account_id" {
  type        = string
  description = "Resource id of the existing Cosmos DB account that holds OpenWhisk's database."

  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.DocumentDB/databaseAccounts/[a-z0-9-]{3,44}$", var.cosmosdb_account_id))
    error_message = "cosmosdb_account_id must be a Cosmos DB account id, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.DocumentDB/databaseAccounts/<name>, got \"${var.cosmosdb_account_id}\"."
  }
}

variable "cosmosdb_account_endpoint" {
  type        = string
  description = "The account's endpoint (COSMOSDB__accountEndpoint). Default: https://<account name>.documents.azure.com:443/, the public cloud's."
  default     = null

  validation {
    condition     = var.cosmosdb_account_endpoint == null || can(regex("^https://[^/]+/?$", var.cosmosdb_account_endpoint))
    error_message = "cosmosdb_account_endpoint must be an https:// URL such as https://<account>.documents.azure.com:443/, got \"${coalesce(var.cosmosdb_account_endpoint, "null")}\"."
  }
}

variable "cosmosdb_database_name" {
  type        = string
  description = "The database that holds OpenWhisk's whisks and subjects containers (COSMOSDB_NAME). Each region's identity gets the Built-in Data Contributor role on it."

  validation {
    condition     = can(regex("^[^/\\\\#?]{1,255}$", var.cosmosdb_database_name)) && trimspace(var.cosmosdb_database_name) == var.cosmosdb_database_name
    error_message = "cosmosdb_database_name must be 1 to 255 characters without '/', '\\', '#', '?' or surrounding blanks, got \"${var.cosmosdb_database_name}\"."
  }
}

variable "cosmosdb_containers" {
  type = object({
    whisks   = optional(string, "whisks")
    subjects = optional(string, "subjects")
    lease    = optional(string, "cache-invalidator-lease")
  })
  description = "Container names (COSMOSDB_WHISKS_CONTAINER, COSMOSDB_SUBJECTS_CONTAINER, COSMOSDB_LEASE_CONTAINER). The lease container is shared by every region; the lease prefixes keep the regions apart."
  default     = {}

  validation {
    condition     = alltrue([for name in values(var.cosmosdb_containers) : can(regex("^[^/\\\\#?]{1,255}$", name))])
    error_message = "cosmosdb_containers: each name must be 1 to 255 characters without '/', '\\', '#' or '?', got ${jsonencode(var.cosmosdb_containers)}."
  }

  validation {
    condition     = length(distinct(values(var.cosmosdb_containers))) == 3
    error_message = "cosmosdb_containers: whisks, subjects and lease must be three different containers, got ${jsonencode(var.cosmosdb_containers)}."
  }
}

variable "create_lease_container" {
  type        = bool
  description = "Create the lease container (partition key /id) once for all regions. Set false when it exists already. A managed identity cannot create containers, so the app never does (COSMOSDB_CREATE_LEASE_CONTAINER=false)."
  default     = true
}

variable "operator_principal_ids" {
  type        = map(string)
  description = "Who runs `python -m cache_invalidator check` and `replay` under their own Entra sign-in: a name of your choosing => the object id of a user, group or service principal. Each gets Cosmos DB Built-in Data Reader on exactly the whisks, subjects and lease containers, which is all both commands read (docs/DEPLOY.md, \"Who may do what\")."
  default     = {}

  validation {
    condition     = alltrue([for id in values(var.operator_principal_ids) : can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", id))])
    error_message = "operator_principal_ids: each value must be an Entra object id (a GUID), got ${jsonencode(var.operator_principal_ids)}."
  }
}

variable "key_vault_id" {
  type        = string
  description = "Resource id of the existing Key Vault (Azure RBAC authorization) that holds the regions' Kafka secrets. Required when a region names a kafka_sasl_password_secret_name or kafka_producer_secret_names."
  default     = null

  validation {
    condition     = var.key_vault_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.KeyVault/vaults/[a-zA-Z0-9-]{3,24}$", var.key_vault_id))
    error_message = "key_vault_id must be a Key Vault id, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/vaults/<name>, got \"${coalesce(var.key_vault_id, "null")}\"."
  }
}

variable "action_group_id" {
  type        = string
  description = "Resource id of the existing action group the alerts notify."

  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(?i:microsoft\\.insights)/actionGroups/[^/]+$", var.action_group_id))
    error_message = "action_group_id must be an action group id, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Insights/actionGroups/<name>, got \"${var.action_group_id}\"."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Resource id of an existing Log Analytics workspace for every region's Application Insights. Default: one workspace per region."
  default     = null

  validation {
    condition     = var.log_analytics_workspace_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(?i:microsoft\\.operationalinsights)/workspaces/[^/]+$", var.log_analytics_workspace_id))
    error_message = "log_analytics_workspace_id must be a workspace id, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.OperationalInsights/workspaces/<name>, got \"${coalesce(var.log_analytics_workspace_id, "null")}\"."
  }
}

# --- The Function Apps ---------------------------------------------------------

variable "python_version" {
  type        = string
  description = "Python of every Function App, and of the package scripts/package builds. Default 3.13: for 3.13 Azure runs the app in azure-functions-runtime, the worker code that the tests' runtime suite drives; the app supports 3.11 to 3.13."
  default     = "3.13"

  validation {
    condition     = contains(["3.11", "3.12", "3.13"], var.python_version)
    error_message = "python_version must be 3.11, 3.12 or 3.13 (the versions the app supports), got \"${var.python_version}\"."
  }
}

variable "instance_memory_in_mb" {
  type        = number
  description = "Memory of each Flex Consumption instance. 2048 holds the producer's queue of a 1000-document batch many times over."
  default     = 2048

  validation {
    condition     = contains([512, 2048, 4096], var.instance_memory_in_mb)
    error_message = "instance_memory_in_mb must be 512, 2048 or 4096, got ${var.instance_memory_in_mb}."
  }
}

variable "maximum_instance_count" {
  type        = number
  description = "Most instances a region's app scales out to, unless the region says otherwise. The change feed is read one lease at a time, so more instances than feed ranges only wait. 40 to 1000: Flex Consumption's lowest maximum for Python is 40 (docs/DEPLOY.md)."
  default     = 40

  validation {
    condition     = var.maximum_instance_count >= 40 && var.maximum_instance_count <= 1000 && floor(var.maximum_instance_count) == var.maximum_instance_count
    error_message = "maximum_instance_count must be a whole number from 40 (Flex Consumption's lowest maximum for Python) to 1000, got ${var.maximum_instance_count}."
  }
}

variable "always_ready_instance_count" {
  type        = number
  description = "Instances kept warm for each of the two change-feed functions (the lease watch gets none), unless the region says otherwise. 0 lets a region scale to zero, and the first change after a quiet spell then waits for a cold start before other regions' caches are invalidated."
  default     = 1

  validation {
    condition     = var.always_ready_instance_count >= 0 && var.always_ready_instance_count <= 10 && floor(var.always_ready_instance_count) == var.always_ready_instance_count
    error_message = "always_ready_instance_count must be a whole number from 0 to 10, got ${var.always_ready_instance_count}."
  }
}

# --- App settings shared by every region (README.md, "Settings") ---------------

variable "kafka_topic" {
  type        = string
  description = "KAFKA_TOPIC of every region that does not name its own: the topic the controllers consume. It must exist."
  default     = "cacheInvalidation"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,249}$", var.kafka_topic))
    error_message = "kafka_topic must be 1 to 249 letters, digits, '.', '_' or '-' (a Kafka topic name), got \"${var.kafka_topic}\"."
  }
}

variable "kafka_delivery_timeout_seconds" {
  type        = number
  description = "KAFKA_DELIVERY_TIMEOUT_SECONDS: how long a batch may take to be acknowledged before it fails and is retried; below host.json's functionTimeout of 2 minutes."
  default     = 30

  validation {
    condition     = var.kafka_delivery_timeout_seconds >= 1 && var.kafka_delivery_timeout_seconds <= 100
    error_message = "kafka_delivery_timeout_seconds must be between 1 and 100 (below host.json's functionTimeout of 2 minutes), got ${var.kafka_delivery_timeout_seconds}."
  }
}

variable "invalidation_instance_id" {
  type        = string
  description = "INVALIDATION_INSTANCE_ID: the messages' instanceId. Never a controller's id, or that controller ignores them."
  default     = "cache-invalidator"

  validation {
    condition     = length(trimspace(var.invalidation_instance_id)) > 0 && !can(regex("^controller[0-9]+$", var.invalidation_instance_id))
    error_message = "invalidation_instance_id must be set and must not look like a controller's id (controller0, controller1, ...), got \"${var.invalidation_instance_id}\"."
  }
}

variable "invalidate_auth_keys" {
  type        = bool
  description = "INVALIDATE_AUTH_KEYS: also invalidate identities by API key. The messages then carry the API keys."
  default     = false
}

variable "cosmosdb_start_from_beginning" {
  type        = bool
  description = "COSMOSDB_START_FROM_BEGINNING of every region that does not say otherwise: read each feed from its beginning when no lease exists yet. Off: a new region needs only the changes from now on."
  default     = false
}

variable "cosmosdb_max_items_per_invocation" {
  type        = number
  description = "COSMOSDB_MAX_ITEMS_PER_INVOCATION: most changes handed to one invocation."
  default     = 1000

  validation {
    condition     = var.cosmosdb_max_items_per_invocation >= 1 && floor(var.cosmosdb_max_items_per_invocation) == var.cosmosdb_max_items_per_invocation
    error_message = "cosmosdb_max_items_per_invocation must be a whole number of at least 1, got ${var.cosmosdb_max_items_per_invocation}."
  }
}

variable "cosmosdb_feed_poll_delay_ms" {
  type        = number
  description = "COSMOSDB_FEED_POLL_DELAY_MS: pause between polls of an idle feed; it bounds how stale another region's cache can get."
  default     = 1000

  validation {
    condition     = var.cosmosdb_feed_poll_delay_ms >= 100 && floor(var.cosmosdb_feed_poll_delay_ms) == var.cosmosdb_feed_poll_delay_ms
    error_message = "cosmosdb_feed_poll_delay_ms must be a whole number of at least 100, got ${var.cosmosdb_feed_poll_delay_ms}."
  }
}

# --- Alerts ------------------------------------------------------------------

variable "alert_lag_threshold_seconds" {
  type        = number
  description = "Alert when a batch's lag_seconds (now minus its newest change) goes above this: another region's caches are that stale."
  default     = 60

  validation {
    condition     = var.alert_lag_threshold_seconds > 0
    error_message = "alert_lag_threshold_seconds must be above 0, got ${var.alert_lag_threshold_seconds}."
  }
}

variable "alert_failed_batches_threshold" {
  type        = number
  description = "Alert when more failed batches than this are logged in one evaluation window. 0: alert on the first."
  default     = 0

  validation {
    condition     = var.alert_failed_batches_threshold >= 0 && floor(var.alert_failed_batches_threshold) == var.alert_failed_batches_threshold
    error_message = "alert_failed_batches_threshold must be a whole number of at least 0, got ${var.alert_failed_batches_threshold}."
  }
}

variable "alert_window" {
  type        = string
  description = "How often the alert queries run and how far back they look (ISO 8601)."
  default     = "PT5M"

  validation {
    condition     = contains(["PT1M", "PT5M", "PT10M", "PT15M", "PT30M", "PT45M", "PT1H"], var.alert_window)
    error_message = "alert_window must be one of PT1M, PT5M, PT10M, PT15M, PT30M, PT45M or PT1H, got \"${var.alert_window}\"."
  }
}

variable "workbook_location" {
  type        = string
  description = "The Azure region of the deployment's workbook. Default: the location of the first region, by key."
  default     = null

  validation {
    condition     = var.workbook_location == null || can(regex("^[a-z][a-z0-9]+$", var.workbook_location))
    error_message = "workbook_location must be an Azure region name such as westeurope, got \"${coalesce(var.workbook_location, "null")}\"."
  }
}

# --- The lease watch -----------------------------------------------------------

variable "lease_watch_schedule" {
  type        = string
  description = "LEASE_WATCH_SCHEDULE: when each region's app reads every region's leases, NCRONTAB with seconds. Default (null): the app's, every minute."
  default     = null

  validation {
    condition     = var.lease_watch_schedule == null ? true : can(regex("^\\S+( +\\S+){5}$", trimspace(var.lease_watch_schedule)))
    error_message = "lease_watch_schedule must be an NCRONTAB expression of six fields, seconds first, e.g. \"0 */1 * * * *\"; got \"${var.lease_watch_schedule == null ? "" : var.lease_watch_schedule}\"."
  }
}

variable "lease_watch_stale_seconds" {
  type        = number
  description = "LEASE_WATCH_STALE_SECONDS: a region whose leases were not renewed for this long is reported stale (the processor renews every 17 s, takes a lease over after 60 s)."
  default     = 120

  validation {
    condition     = var.lease_watch_stale_seconds >= 60 && floor(var.lease_watch_stale_seconds) == var.lease_watch_stale_seconds
    error_message = "lease_watch_stale_seconds must be a whole number of at least 60 (a lease expires after 60 s), got ${var.lease_watch_stale_seconds}."
  }
}

variable "lease_watch_pending_seconds" {
  type        = number
  description = "LEASE_WATCH_PENDING_SECONDS: a region with a change not yet handed to its function for this long is reported behind (a WARNING line)."
  default     = 300

  validation {
    condition     = var.lease_watch_pending_seconds > 0 && floor(var.lease_watch_pending_seconds) == var.lease_watch_pending_seconds
    error_message = "lease_watch_pending_seconds must be a whole number above 0, got ${var.lease_watch_pending_seconds}."
  }
}

variable "alert_watch_silence_window" {
  type        = string
  description = "Alert when a region's app logs no lease watch line that read the leases for this long (ISO 8601): the app is stopped, or cannot read the lease container."
  default     = "PT10M"

  validation {
    condition     = contains(["PT5M", "PT10M", "PT15M", "PT30M", "PT45M", "PT1H"], var.alert_watch_silence_window)
    error_message = "alert_watch_silence_window must be one of PT5M, PT10M, PT15M, PT30M, PT45M or PT1H, got \"${var.alert_watch_silence_window}\"."
  }
}

variable "soft_delete_ttl_seconds" {
  type        = number
  description = <<-EOT
    OpenWhisk's soft-delete TTL, in seconds: whisk.cosmosdb.soft-delete-ttl as every controller of
    every region sets it (README.md, "What OpenWhisk must be configured with"), e.g. 2592000 for
    `30 d`. The one TTL the deployment declares, and everything that depends on it follows it:
    the oldest-pending-change alert fires at 90 % of it, and each region's app carries it as
    OPENWHISK_SOFT_DELETE_TTL_SECONDS, which `python -m cache_invalidator check` takes for its
    --min-soft-delete-ttl (it warns of soft deletes whose ttl is shorter than declared).
  EOT

  validation {
    condition     = var.soft_delete_ttl_seconds >= 3600 && floor(var.soft_delete_ttl_seconds) == var.soft_delete_ttl_seconds
    error_message = "soft_delete_ttl_seconds must be a whole number of seconds, at least 3600 (an hour: a shorter TTL leaves no time to act on the alert), got ${var.soft_delete_ttl_seconds}."
  }
}

# --- The regions ---------------------------------------------------------------

variable "regions" {
  type = map(object({
    cluster_id                      = string
    kafka_hosts                     = string
    location                        = optional(string)
    kafka_topic                     = optional(string)
    kafka_security_protocol         = optional(string)
    kafka_sasl_mechanism            = optional(string)
    kafka_sasl_username             = optional(string)
    kafka_sasl_password_secret_name = optional(string)
    kafka_ssl_ca_location           = optional(string)
    kafka_producer_properties       = optional(map(string), {})
    kafka_producer_secret_names     = optional(map(string), {})
    cosmosdb_preferred_locations    = optional(list(string), [])
    cosmosdb_start_from_beginning   = optional(bool)
    cosmosdb_start_from_time        = optional(string)
    cosmosdb_change_feed_mode       = optional(string, "LatestVersion")
    subnet_id                       = optional(string)
    resource_group_name             = optional(string)
    function_app_name               = optional(string)
    storage_account_name            = optional(string)
    maximum_instance_count          = optional(number)
    always_ready_instance_count     = optional(number)
  }))
  description = <<-EOT
    One Function App per entry; the key names the region in resource names (lowercase letters,
    digits, '-'). Per region:
    - cluster_id: CLUSTER_ID, the `_clusterId` this region's controllers write. Unique across
      regions: it prefixes the leases (`<cluster_id>-whisks`, `<cluster_id>-subjects`).
    - kafka_hosts: KAFKA_HOSTS, this region's Kafka, host:port[,host:port...].
    - location: the Azure region. Default: the key.
    - kafka_topic: KAFKA_TOPIC. Default: var.kafka_topic.
    - kafka_security_protocol, kafka_sasl_mechanism, kafka_sasl_username, kafka_ssl_ca_location:
      KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SSL_CA_LOCATION.
      A SASL_* protocol needs a mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    - kafka_sasl_password_secret_name: the Key Vault secret (in key_vault_id) holding
      KAFKA_SASL_PASSWORD; the app setting is a Key Vault reference, never the password.
    - kafka_producer_properties: librdkafka properties, { "linger.ms" = "5" } becomes
      KAFKA_PRODUCER_LINGER_MS=5. Not those the app manages, and not secrets.
    - kafka_producer_secret_names: librdkafka properties whose values are Key Vault secrets,
      { "sasl.oauthbearer.client.secret" = "<secret name>" }.
    - cosmosdb_preferred_locations: COSMOSDB_PREFERRED_LOCATIONS, nearest first.
    - cosmosdb_start_from_beginning: COSMOSDB_START_FROM_BEGINNING for this region.
    - cosmosdb_start_from_time: COSMOSDB_START_FROM_TIME, RFC 3339 (2026-05-01T10:00:00Z): where
      this region's feeds start while they have no leases, e.g. when it takes over from the
      Scala service (docs/OPERATIONS.md). Remove it once the region runs. Not with
      cosmosdb_start_from_beginning = true, the region's or the shared one.
    - cosmosdb_change_feed_mode: COSMOSDB_CHANGE_FEED_MODE, LatestVersion (the default) or
      AllVersionsAndDeletes, the feed that carries hard deletes (the account needs continuous
      backup and the feature; docs/DEPLOY.md). Its leases are `<cluster_id>-whisks-avad` and
      `<cluster_id>-subjects-avad`, and it starts from now only: no start option beside it.
    - subnet_id: a subnet delegated to Microsoft.App/environments for VNet integration, when
      this region's Kafka is private.
    - resource_group_name, function_app_name, storage_account_name: names other than the
      derived ones.
    - maximum_instance_count, always_ready_instance_count: other than the shared defaults.
  EOT

  validation {
    condition     = length(var.regions) > 0
    error_message = "regions must hold at least one region."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", key))])
    error_message = "regions: each key must be 2 to 24 lowercase letters, digits or '-', starting with a letter (it goes into resource names); wrong: ${join(", ", [for key, region in var.regions : "\"${key}\"" if !can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", key))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", region.cluster_id))])
    error_message = "regions: cluster_id must look like a lease prefix, 1 to 64 letters, digits, '.', '_' or '-' starting with a letter or digit (Cosmos DB ids allow no '/', '\\', '#' or '?'); wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.cluster_id}\")" if !can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", region.cluster_id))])}."
  }

  validation {
    condition     = length(distinct([for region in values(var.regions) : region.cluster_id])) == length(var.regions)
    error_message = "regions: every region needs its own cluster_id, or two Function Apps share one lease prefix and each sees only part of the changes; ${join("; ", [for cluster_id in distinct([for region in values(var.regions) : region.cluster_id]) : "regions ${join(" and ", [for key, region in var.regions : key if region.cluster_id == cluster_id])} share cluster_id \"${cluster_id}\"" if length([for region in values(var.regions) : region if region.cluster_id == cluster_id]) > 1])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : alltrue([for server in split(",", region.kafka_hosts) : can(regex("^\\S+:[0-9]{1,5}$", trimspace(server)))])])
    error_message = "regions: kafka_hosts must be host:port[,host:port...]; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.kafka_hosts}\")" if !alltrue([for server in split(",", region.kafka_hosts) : can(regex("^\\S+:[0-9]{1,5}$", trimspace(server)))])])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.location == null || can(regex("^[a-z][a-z0-9]+$", region.location))])
    error_message = "regions: location must be an Azure region name such as westeurope; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.location}\")" if !(region.location == null || can(regex("^[a-z][a-z0-9]+$", region.location)))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.kafka_topic == null || can(regex("^[A-Za-z0-9._-]{1,249}$", region.kafka_topic))])
    error_message = "regions: kafka_topic must be a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-'); wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.kafka_topic}\")" if !(region.kafka_topic == null || can(regex("^[A-Za-z0-9._-]{1,249}$", region.kafka_topic)))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : contains(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", "-"], coalesce(region.kafka_security_protocol, "-"))])
    error_message = "regions: kafka_security_protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.kafka_security_protocol}\")" if !contains(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", "-"], coalesce(region.kafka_security_protocol, "-"))])}."
  }

  # The mechanisms the client that scripts/package ships is built with: infra/tests holds this list to
  # what that client says of itself (cache_invalidator/producer.py, built_in_sasl_mechanisms).
  validation {
    condition     = alltrue([for key, region in var.regions : contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "-"], coalesce(region.kafka_sasl_mechanism, "-"))])
    error_message = "regions: kafka_sasl_mechanism must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, the mechanisms the packaged Kafka client is built with (confluent-kafka's wheels have no GSSAPI, librdkafka's default); wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.kafka_sasl_mechanism}\")" if !contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "-"], coalesce(region.kafka_sasl_mechanism, "-"))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : (region.kafka_sasl_username == null) == (region.kafka_sasl_password_secret_name == null)])
    error_message = "regions: the Kafka settings of ${join(", ", [for key, region in var.regions : "region ${key}" if(region.kafka_sasl_username == null) != (region.kafka_sasl_password_secret_name == null)])} are incomplete: kafka_sasl_username and kafka_sasl_password_secret_name go together (KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.kafka_sasl_username == null || contains(["SASL_SSL", "SASL_PLAINTEXT"], coalesce(region.kafka_security_protocol, "-"))])
    error_message = "regions: the Kafka settings of ${join(", ", [for key, region in var.regions : "region ${key}" if !(region.kafka_sasl_username == null || contains(["SASL_SSL", "SASL_PLAINTEXT"], coalesce(region.kafka_security_protocol, "-")))])} are incomplete: a kafka_sasl_username needs kafka_security_protocol SASL_SSL or SASL_PLAINTEXT."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : !contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], coalesce(region.kafka_sasl_mechanism, "-")) || region.kafka_sasl_username != null])
    error_message = "regions: the Kafka settings of ${join(", ", [for key, region in var.regions : "region ${key}" if contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], coalesce(region.kafka_sasl_mechanism, "-")) && region.kafka_sasl_username == null])} are incomplete: kafka_sasl_mechanism PLAIN or SCRAM needs kafka_sasl_username and kafka_sasl_password_secret_name."
  }

  # The app names no default mechanism (librdkafka's, GSSAPI, is not in the packaged client).
  validation {
    condition     = alltrue([for key, region in var.regions : region.kafka_sasl_mechanism != null || !contains(["SASL_SSL", "SASL_PLAINTEXT"], coalesce(region.kafka_security_protocol, "-"))])
    error_message = "regions: the Kafka settings of ${join(", ", [for key, region in var.regions : "region ${key}" if region.kafka_sasl_mechanism == null && contains(["SASL_SSL", "SASL_PLAINTEXT"], coalesce(region.kafka_security_protocol, "-"))])} are incomplete: kafka_security_protocol SASL_SSL or SASL_PLAINTEXT needs a kafka_sasl_mechanism (KAFKA_SASL_MECHANISM), the one the brokers expect."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.kafka_sasl_mechanism == null || contains(["SASL_SSL", "SASL_PLAINTEXT"], coalesce(region.kafka_security_protocol, "-"))])
    error_message = "regions: the Kafka settings of ${join(", ", [for key, region in var.regions : "region ${key}" if !(region.kafka_sasl_mechanism == null || contains(["SASL_SSL", "SASL_PLAINTEXT"], coalesce(region.kafka_security_protocol, "-")))])} are incomplete: a kafka_sasl_mechanism needs kafka_security_protocol SASL_SSL or SASL_PLAINTEXT."
  }

  validation {
    condition = alltrue([for key, region in var.regions : alltrue([for name in concat(keys(region.kafka_producer_properties), keys(region.kafka_producer_secret_names)) :
    can(regex("^[a-z0-9]+(\\.[a-z0-9]+)*$", name))])])
    error_message = "regions: kafka_producer_properties and kafka_producer_secret_names take librdkafka property names such as linger.ms; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (${join(", ", [for name in concat(keys(region.kafka_producer_properties), keys(region.kafka_producer_secret_names)) : name if !can(regex("^[a-z0-9]+(\\.[a-z0-9]+)*$", name))])})" if !alltrue([for name in concat(keys(region.kafka_producer_properties), keys(region.kafka_producer_secret_names)) : can(regex("^[a-z0-9]+(\\.[a-z0-9]+)*$", name))])])}."
  }

  # The app refuses these as KAFKA_PRODUCER_* at its first invocation; refuse them at plan.
  validation {
    condition = alltrue([for key, region in var.regions : length(setintersection(concat(keys(region.kafka_producer_properties), keys(region.kafka_producer_secret_names)),
    ["bootstrap.servers", "acks", "request.required.acks", "enable.idempotence", "message.timeout.ms", "delivery.timeout.ms", "delivery.report.only.error", "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password", "ssl.ca.location", "builtin.features"])) == 0])
    error_message = "regions: the app manages these producer properties itself (use the region's kafka_* attributes instead); found in ${join(", ", [for key, region in var.regions : "region ${key} (${join(", ", sort(setintersection(concat(keys(region.kafka_producer_properties), keys(region.kafka_producer_secret_names)), ["bootstrap.servers", "acks", "request.required.acks", "enable.idempotence", "message.timeout.ms", "delivery.timeout.ms", "delivery.report.only.error", "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password", "ssl.ca.location", "builtin.features"])))})" if length(setintersection(concat(keys(region.kafka_producer_properties), keys(region.kafka_producer_secret_names)), ["bootstrap.servers", "acks", "request.required.acks", "enable.idempotence", "message.timeout.ms", "delivery.timeout.ms", "delivery.report.only.error", "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password", "ssl.ca.location", "builtin.features"])) > 0])}."
  }

  # Properties the app treats as secrets must not sit in plain app settings.
  validation {
    condition     = alltrue([for key, region in var.regions : alltrue([for name in keys(region.kafka_producer_properties) : !can(regex("password|secret|key|token|jaas|credential|pem", name))])])
    error_message = "regions: producer properties named like secrets (password, secret, key, token, jaas, credential, pem) belong in kafka_producer_secret_names, as Key Vault secrets; found in kafka_producer_properties of ${join(", ", [for key, region in var.regions : "region ${key} (${join(", ", [for name in keys(region.kafka_producer_properties) : name if can(regex("password|secret|key|token|jaas|credential|pem", name))])})" if !alltrue([for name in keys(region.kafka_producer_properties) : !can(regex("password|secret|key|token|jaas|credential|pem", name))])])}."
  }

  validation {
    condition = alltrue([for key, region in var.regions : alltrue([for name in concat(compact([region.kafka_sasl_password_secret_name]), values(region.kafka_producer_secret_names)) :
    can(regex("^[0-9a-zA-Z-]{1,127}$", name))])])
    error_message = "regions: Key Vault secret names are 1 to 127 letters, digits or '-'; wrong in ${join(", ", [for key, region in var.regions : "region ${key}" if !alltrue([for name in concat(compact([region.kafka_sasl_password_secret_name]), values(region.kafka_producer_secret_names)) : can(regex("^[0-9a-zA-Z-]{1,127}$", name))])])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.subnet_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.Network/virtualNetworks/[^/]+/subnets/[^/]+$", region.subnet_id))])
    error_message = "regions: subnet_id must be a subnet id, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.subnet_id}\")" if !(region.subnet_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.Network/virtualNetworks/[^/]+/subnets/[^/]+$", region.subnet_id)))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.storage_account_name == null || can(regex("^[a-z0-9]{3,24}$", region.storage_account_name))])
    error_message = "regions: storage_account_name must be 3 to 24 lowercase letters or digits; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.storage_account_name}\")" if !(region.storage_account_name == null || can(regex("^[a-z0-9]{3,24}$", region.storage_account_name)))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.function_app_name == null || can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", region.function_app_name))])
    error_message = "regions: function_app_name must be 2 to 32 lowercase letters, digits or '-' (longer names can collide as host ids); wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.function_app_name}\")" if !(region.function_app_name == null || can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", region.function_app_name)))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.maximum_instance_count == null || try(region.maximum_instance_count >= 40 && region.maximum_instance_count <= 1000 && floor(region.maximum_instance_count) == region.maximum_instance_count, false)])
    error_message = "regions: maximum_instance_count must be a whole number from 40 (Flex Consumption's lowest maximum for Python) to 1000; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (${region.maximum_instance_count})" if !(region.maximum_instance_count == null || try(region.maximum_instance_count >= 40 && region.maximum_instance_count <= 1000 && floor(region.maximum_instance_count) == region.maximum_instance_count, false))])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.always_ready_instance_count == null || try(region.always_ready_instance_count >= 0 && region.always_ready_instance_count <= 10, false)])
    error_message = "regions: always_ready_instance_count must be from 0 to 10; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (${region.always_ready_instance_count})" if !(region.always_ready_instance_count == null || try(region.always_ready_instance_count >= 0 && region.always_ready_instance_count <= 10, false))])}."
  }
  validation {
    condition     = alltrue([for key, region in var.regions : region.cosmosdb_start_from_time == null || can(formatdate("YYYY", region.cosmosdb_start_from_time))])
    error_message = "regions: cosmosdb_start_from_time must be an RFC 3339 time with a zone, such as 2026-05-01T10:00:00Z; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.cosmosdb_start_from_time}\")" if !(region.cosmosdb_start_from_time == null || can(formatdate("YYYY", region.cosmosdb_start_from_time)))])}."
  }
  # A start time beside start-from-beginning is refused by the region module, which sees the flag a
  # region ends up with, its own or the shared cosmosdb_start_from_beginning.

  validation {
    condition     = alltrue([for key, region in var.regions : contains(["LatestVersion", "AllVersionsAndDeletes"], region.cosmosdb_change_feed_mode)])
    error_message = "regions: cosmosdb_change_feed_mode must be LatestVersion or AllVersionsAndDeletes; wrong in ${join(", ", [for key, region in var.regions : "region ${key} (\"${region.cosmosdb_change_feed_mode}\")" if !contains(["LatestVersion", "AllVersionsAndDeletes"], region.cosmosdb_change_feed_mode)])}."
  }

  validation {
    condition     = alltrue([for key, region in var.regions : region.cosmosdb_change_feed_mode != "AllVersionsAndDeletes" || (region.cosmosdb_start_from_time == null && region.cosmosdb_start_from_beginning != true)])
    error_message = "regions: cosmosdb_change_feed_mode = AllVersionsAndDeletes starts from now or from its leases only, so cosmosdb_start_from_beginning = true and cosmosdb_start_from_time are refused beside it (COSMOSDB_START_FROM_BEGINNING, COSMOSDB_START_FROM_TIME); both are set in ${join(", ", [for key, region in var.regions : "region ${key}" if !(region.cosmosdb_change_feed_mode != "AllVersionsAndDeletes" || (region.cosmosdb_start_from_time == null && region.cosmosdb_start_from_beginning != true))])}."
  }
}
