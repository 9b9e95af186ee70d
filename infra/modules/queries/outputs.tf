output "alert_queries" {
  description = "The log queries behind the alert rules, by the rule's query name; each reads Application Insights' traces."
  value       = local.alert_queries
}

output "workbook_queries" {
  description = "The log queries of the workbook's panels over one region's Application Insights (traces)."
  value       = local.workbook_queries
}

output "line_fields" {
  description = "The fields each query extracts from the app's two lines, with their patterns (RE2) and KQL types: batch and watch."
  value       = { batch = local.batch_fields, watch = local.watch_fields }
}

output "fired_alerts_format" {
  description = "The Azure Resource Graph query of the alerts that fired on one Application Insights: format() it with that resource's id."
  value       = local.fired_alerts_format
}
