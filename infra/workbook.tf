# One Azure Monitor workbook for the deployment: a group of panels per region, each over
# that region's Application Insights, answering the questions docs/OPERATIONS.md has an
# operator ask (docs/DEPLOY.md, "The workbook", sketches each panel). Its log queries come
# from the same parsers as the alerts (modules/queries), and infra/tests check them as
# they check the alerts'.

module "queries" {
  source = "./modules/queries"
}

locals {
  workbook_regions = sort(keys(var.regions))
  # The time range every log panel follows; the alerts panel reads Resource Graph, which
  # keeps 30 days.
  workbook_time_range = {
    type = 9
    name = "time range"
    content = {
      version = "KqlParameterItem/1.0"
      style   = "pills"
      parameters = [{
        id         = "6f1f3c0e-5a9b-4d7e-9a63-4f1c2b0d8e11"
        version    = "KqlParameterItem/1.0"
        name       = "TimeRange"
        label      = "Time range"
        type       = 4
        isRequired = true
        value      = { durationMs = 14400000 }
        typeSettings = {
          allowCustom      = true
          selectableValues = [for hours in [1, 4, 12, 24, 72, 168] : { durationMs = hours * 3600000 }]
        }
      }]
    }
  }

  # Per region, in this order (docs/DEPLOY.md sketches each).
  workbook_panels = [
    { name = "invalidations", title = "Invalidations sent per minute, by container", query = module.queries.workbook_queries.invalidations_per_minute, visualization = "timechart" },
    { name = "batches", title = "Change batches by outcome (per 5 minutes)", query = module.queries.workbook_queries.batches_by_outcome, visualization = "barchart" },
    { name = "lag", title = "Lag of the batches, p50 and p99 (seconds, per 5 minutes)", query = module.queries.workbook_queries.lag_percentiles, visualization = "timechart" },
    { name = "skipped", title = "Changes skipped as this region's own, and poison documents (per 5 minutes)", query = module.queries.workbook_queries.skipped_and_poison, visualization = "barchart" },
    { name = "watch status", title = "Lease watch: every region's status as this region sees it (lines per 5 minutes)", query = module.queries.workbook_queries.watch_status_over_time, visualization = "barchart" },
    { name = "watch now", title = "Lease watch: every region's latest line", query = module.queries.workbook_queries.watch_status_now, visualization = "table" },
    { name = "oldest pending", title = "Oldest pending change of every region (seconds, per 5 minutes)", query = module.queries.workbook_queries.oldest_pending_change, visualization = "timechart" },
  ]

  workbook = {
    version = "Notebook/1.0"
    items = concat(
      [
        {
          type = 1
          name = "about"
          content = {
            json = "## Cache invalidator: ${var.name_prefix}\nOne group per region, each over that region's Application Insights: what its app sent, how late, what it skipped, how it sees every region's leases, and which alerts fired. What to do about each alert: docs/OPERATIONS.md, \"Alerts\"."
          }
        },
        local.workbook_time_range,
      ],
      [for key in local.workbook_regions : {
        type = 12
        name = "region ${key}"
        content = {
          version   = "NotebookGroup/1.0"
          groupType = "editable"
          title     = "Region ${key} (${module.region[key].function_app_name})"
          items = concat(
            [for panel in local.workbook_panels : {
              type = 3
              name = "${key} ${panel.name}"
              content = {
                version                  = "KqlItem/1.0"
                query                    = panel.query
                size                     = 0
                title                    = panel.title
                timeContextFromParameter = "TimeRange"
                queryType                = 0
                resourceType             = "microsoft.insights/components"
                crossComponentResources  = [module.region[key].application_insights_id]
                visualization            = panel.visualization
              }
            }],
            [{
              type = 3
              name = "${key} alerts"
              content = {
                version                 = "KqlItem/1.0"
                query                   = format(module.queries.fired_alerts_format, module.region[key].application_insights_id)
                size                    = 0
                title                   = "Alerts that fired on this region's Application Insights (last 30 days)"
                noDataMessage           = "No alert fired in 30 days"
                queryType               = 1
                resourceType            = "microsoft.resourcegraph/resources"
                crossComponentResources = ["/subscriptions/${var.subscription_id}"]
                visualization           = "table"
              }
            }],
          )
        }
      }],
    )
  }
}

resource "azurerm_application_insights_workbook" "operations" {
  # A workbook's name is a GUID; this one is the same for the same deployment, so that
  # a plan finds the workbook it made.
  name                = uuidv5("url", "/subscriptions/${var.subscription_id}/resourceGroups/${var.resource_group_name}/workbooks/cache-invalidator/${var.name_prefix}")
  resource_group_name = var.resource_group_name
  location            = coalesce(var.workbook_location, var.regions[local.workbook_regions[0]].location, local.workbook_regions[0])
  display_name        = "Cache invalidator ${var.name_prefix}"
  description         = "Every region's invalidations, lag, skipped changes, lease watch and alerts (docs/DEPLOY.md, \"The workbook\")."
  data_json           = jsonencode(local.workbook)
  tags                = var.tags

  # Its queries name each region's Application Insights by id: created after them.
  depends_on = [module.region]
}
