# Two regions, each with its own Kafka reached over the internet with SASL_SSL and
# SCRAM; each region's Kafka password is a secret in the shared Key Vault.

module "cache_invalidator" {
  source = "../.."

  subscription_id        = var.subscription_id
  resource_group_name    = var.resource_group_name
  name_prefix            = "owcache"
  cosmosdb_account_id    = var.cosmosdb_account_id
  cosmosdb_database_name = "openwhisk"
  key_vault_id           = var.key_vault_id
  # whisk.cosmosdb.soft-delete-ttl of every controller: 30 d.
  soft_delete_ttl_seconds = 2592000
  action_group_id         = var.action_group_id
  # Who runs `check` and `replay` under their own sign-in: Data Reader on the three containers.
  operator_principal_ids = var.operator_principal_ids

  regions = {
    westeurope = {
      cluster_id                      = "westeurope"
      kafka_hosts                     = "kafka-0.westeurope.example.net:9093,kafka-1.westeurope.example.net:9093"
      kafka_security_protocol         = "SASL_SSL"
      kafka_sasl_mechanism            = "SCRAM-SHA-512"
      kafka_sasl_username             = "cache-invalidator"
      kafka_sasl_password_secret_name = "kafka-password-westeurope"
      cosmosdb_preferred_locations    = ["West Europe", "North Europe"]
    }
    eastus = {
      cluster_id                      = "eastus"
      kafka_hosts                     = "kafka-0.eastus.example.net:9093,kafka-1.eastus.example.net:9093"
      kafka_security_protocol         = "SASL_SSL"
      kafka_sasl_mechanism            = "SCRAM-SHA-512"
      kafka_sasl_username             = "cache-invalidator"
      kafka_sasl_password_secret_name = "kafka-password-eastus"
      cosmosdb_preferred_locations    = ["East US", "East US 2"]
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
