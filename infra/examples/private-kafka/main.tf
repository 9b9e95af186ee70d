# Three regions whose Kafka is private: each app joins a subnet of its region's VNet
# (delegated to Microsoft.App/environments) and sends all traffic through it. The lease
# container exists already, and all regions log to one workspace.

module "cache_invalidator" {
  source = "../.."

  subscription_id        = var.subscription_id
  resource_group_name    = var.resource_group_name
  name_prefix            = "owcache"
  cosmosdb_account_id    = var.cosmosdb_account_id
  cosmosdb_database_name = "openwhisk"
  create_lease_container = false
  # whisk.cosmosdb.soft-delete-ttl of every controller: 30 d.
  soft_delete_ttl_seconds     = 2592000
  action_group_id             = var.action_group_id
  log_analytics_workspace_id  = var.log_analytics_workspace_id
  alert_lag_threshold_seconds = 30

  regions = {
    for key, region in var.regions : key => {
      cluster_id  = key
      kafka_hosts = region.kafka_hosts
      subnet_id   = region.subnet_id
      # A private broker over PLAINTEXT; nothing to keep in Key Vault.
      kafka_producer_properties = { "linger.ms" = "0" }
    }
  }
}

output "function_apps" {
  description = "Each region's Function App, to publish the package to."
  value       = module.cache_invalidator.function_apps
}

output "alert_queries" {
  description = "Each region's alert queries, to run by hand in its Application Insights (docs/DEPLOY.md)."
  value       = module.cache_invalidator.alert_queries
}

output "workbook" {
  description = "The deployment's workbook (Azure portal: Monitor, Workbooks)."
  value       = module.cache_invalidator.workbook
}
