output "function_app_name" {
  description = "Name of the region's Function App, to publish the package to."
  value       = azapi_resource.function_app.name
}

output "resource_group_name" {
  description = "Resource group of the region's Function App."
  value       = var.resource_group_name
}

output "function_app_id" {
  description = "Resource id of the region's Function App."
  value       = azapi_resource.function_app.id
}

output "default_hostname" {
  description = "The Function App's default host name, known once it exists."
  value       = azapi_resource.function_app.output.properties.defaultHostName
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
    system_assigned_principal_id = azapi_resource.function_app.identity[0].principal_id
  }
}

output "cosmosdb_role_assignments" {
  description = "The Cosmos DB data-plane roles the identity holds, and where: one per container."
  value = merge(
    { for part, assignment in azurerm_cosmosdb_sql_role_assignment.data_reader : part => {
      role_definition_id = assignment.role_definition_id
      scope              = assignment.scope
    } },
    { lease = {
      role_definition_id = azurerm_cosmosdb_sql_role_assignment.lease_data_contributor.role_definition_id
      scope              = azurerm_cosmosdb_sql_role_assignment.lease_data_contributor.scope
    } },
  )
}

output "alert_queries" {
  description = "The log queries behind the alert rules, to run by hand in the region's Application Insights (Logs)."
  value       = module.queries.alert_queries
}

output "application_insights_id" {
  description = "Resource id of the region's Application Insights, known at plan (the workbook's queries name it)."
  value       = local.application_insights_id
}

output "alert_rule_names" {
  description = "The region's alert rules' names, by rule."
  value       = { for rule, alert in azurerm_monitor_scheduled_query_rules_alert_v2.alert : rule => alert.name }
}
