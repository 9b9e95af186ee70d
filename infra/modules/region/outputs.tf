output "function_app_name" {
  description = "Name of the region's Function App, to publish the package to."
  value       = azurerm_function_app_flex_consumption.this.name
}

output "resource_group_name" {
  description = "Resource group of the region's Function App."
  value       = azurerm_function_app_flex_consumption.this.resource_group_name
}

output "function_app_id" {
  description = "Resource id of the region's Function App."
  value       = azurerm_function_app_flex_consumption.this.id
}

output "app_settings" {
  description = "The app settings the Function App gets. No secrets: passwords are Key Vault references."
  value       = local.app_settings
}

output "identity" {
  description = "The user-assigned identity (Cosmos DB, storage, Application Insights) and the app's system-assigned principal (Key Vault references)."
  value = {
    client_id                    = azurerm_user_assigned_identity.this.client_id
    principal_id                 = azurerm_user_assigned_identity.this.principal_id
    id                           = azurerm_user_assigned_identity.this.id
    system_assigned_principal_id = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  }
}

output "cosmosdb_role_assignment" {
  description = "The Cosmos DB data-plane role the identity holds, and where."
  value = {
    role_definition_id = local.cosmosdb_data_contributor_role_definition_id
    scope              = local.cosmosdb_role_scope
  }
}

output "alert_queries" {
  description = "The log queries behind the two alerts, to run by hand in Application Insights."
  value = {
    failed_batches = local.failed_batches_query
    lag_seconds    = local.lag_seconds_query
  }
}

output "application_insights_id" {
  description = "Resource id of the region's Application Insights."
  value       = azurerm_application_insights.this.id
}
