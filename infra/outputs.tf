output "function_apps" {
  description = "Each region's Function App (name, resource group, id), to publish the package to (docs/DEPLOY.md)."
  value = {
    for key, region in module.region : key => {
      name                = region.function_app_name
      resource_group_name = region.resource_group_name
      id                  = region.function_app_id
      default_hostname    = region.default_hostname
    }
  }

  precondition {
    condition     = length(distinct([for names in values(local.names) : names.function_app])) == length(local.names) && length(distinct([for names in values(local.names) : names.storage_account])) == length(local.names)
    error_message = "Two regions got the same Function App or storage account name: ${jsonencode(local.names)}. Give one of them its own function_app_name or storage_account_name."
  }
}

output "lease_prefixes" {
  description = "Each region's lease prefixes in the shared lease container."
  value       = local.lease_prefixes
}

output "app_settings" {
  description = "Each region's app settings. No secrets: passwords are Key Vault references."
  value       = { for key, region in module.region : key => region.app_settings }
}

output "identities" {
  description = "Each region's identities."
  value       = { for key, region in module.region : key => region.identity }
}

output "alert_queries" {
  description = "Each region's alert queries, to run by hand in Application Insights."
  value       = { for key, region in module.region : key => region.alert_queries }
}

output "workbook" {
  description = "The deployment's workbook (Azure portal: Monitor, Workbooks): its resource id and display name."
  value = {
    id           = azurerm_application_insights_workbook.operations.id
    display_name = azurerm_application_insights_workbook.operations.display_name
  }
}
