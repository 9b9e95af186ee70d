# The log queries of the deployment, once: the alerts' (modules/region) and the
# workbook's (../../workbook.tf) are built here from the same parsers of the app's two
# lines. No resources: every query reads Application Insights' `traces` table, in the
# scope (a region's Application Insights) of the rule or workbook item that runs it.
#
# With the host's built-in logging only the text of a line reaches Application Insights,
# so its fields are extracted from the text. Kusto's regular expressions are RE2;
# infra/tests/ parse and analyse every query with Microsoft's Kusto.Language, compile
# every pattern with RE2, and apply the patterns to lines the app's own code writes.

locals {
  # One line per change batch (cache_invalidator/handler.py, _BATCH_FIELDS):
  #   Change batch container=whisks outcome=delivered documents=12 messages_sent=11 skipped_own_cluster=0 poison=1 lag_seconds=1.84 duration_ms=9.6 topic=cacheInvalidation
  # lag_seconds is None when the batch held no _ts: the pattern then finds no number, and the column is null.
  batch_fields = {
    container           = { pattern = "\\bcontainer=(\\S+)", type = "string" }
    outcome             = { pattern = "\\boutcome=(\\S+)", type = "string" }
    documents           = { pattern = "\\bdocuments=([0-9]+)", type = "long" }
    messages_sent       = { pattern = "\\bmessages_sent=([0-9]+)", type = "long" }
    skipped_own_cluster = { pattern = "\\bskipped_own_cluster=([0-9]+)", type = "long" }
    poison              = { pattern = "\\bpoison=([0-9]+)", type = "long" }
    lag_seconds         = { pattern = "\\blag_seconds=([0-9.]+)", type = "double" }
  }

  # One line per region and container, every run of the lease watch (cache_invalidator/lease_watch.py, WATCH_FIELDS):
  #   Lease watch watcher=westeurope region=eastus container=whisks status=stale leases=4 ... pending_changes=7 oldest_pending_seconds=598.0 ...
  # region and container are `*` on the one line of a run that could not read the leases (status unreadable).
  watch_fields = {
    watcher                = { pattern = "\\bwatcher=(\\S+)", type = "string" }
    region                 = { pattern = "\\bregion=(\\S+)", type = "string" }
    container              = { pattern = "\\bcontainer=(\\S+)", type = "string" }
    status                 = { pattern = "\\bstatus=(\\S+)", type = "string" }
    pending_changes        = { pattern = "\\bpending_changes=([0-9]+)", type = "long" }
    oldest_pending_seconds = { pattern = "\\boldest_pending_seconds=([0-9.]+)", type = "double" }
  }

  # `extend` of every field: extract() gives the first group as a string, "" where the pattern finds nothing,
  # which tolong()/todouble() turn into null.
  extend_batch_fields = join(", ", [for name, field in local.batch_fields :
  field.type == "string" ? "${name} = extract(@\"${field.pattern}\", 1, message)" : "${name} = to${field.type}(extract(@\"${field.pattern}\", 1, message))"])
  extend_watch_fields = join(", ", [for name, field in local.watch_fields :
  field.type == "string" ? "${name} = extract(@\"${field.pattern}\", 1, message)" : "${name} = to${field.type}(extract(@\"${field.pattern}\", 1, message))"])

  batches = "traces | where message startswith \"Change batch \" | extend ${local.extend_batch_fields}"
  watch   = "traces | where message startswith \"Lease watch \" | extend ${local.extend_watch_fields}"

  # What each alert rule counts or measures, per row. Every row the rules read is a trace,
  # which host.json keeps out of sampling: a row stands for one line (no itemCount to weigh).
  alert_queries = {
    failed_batches        = "${local.batches} | where outcome == \"failed\" | project timestamp, container"
    lag_seconds           = "${local.batches} | where isnotnull(lag_seconds) | project timestamp, container, lag_seconds"
    stale_regions         = "${local.watch} | where status in (\"stale\", \"missing\") | project timestamp, region, container"
    behind_regions        = "${local.watch} | where status == \"behind\" | project timestamp, region, container, oldest_pending_seconds"
    watch_lines           = "${local.watch} | where status != \"unreadable\" | project timestamp"
    oldest_pending_change = "${local.watch} | where isnotnull(oldest_pending_seconds) | project timestamp, region, container, oldest_pending_seconds"
  }

  # The workbook's panels over one region's Application Insights (../../workbook.tf):
  # the questions docs/OPERATIONS.md has an operator ask, each from the same parser.
  workbook_queries = {
    invalidations_per_minute = "${local.batches} | where outcome == \"delivered\" | summarize invalidations = sum(messages_sent) by bin(timestamp, 1m), container"
    batches_by_outcome       = "${local.batches} | summarize batches = count() by bin(timestamp, 5m), outcome"
    lag_percentiles          = "${local.alert_queries.lag_seconds} | summarize p50 = percentile(lag_seconds, 50), p99 = percentile(lag_seconds, 99) by bin(timestamp, 5m)"
    skipped_and_poison       = "${local.batches} | summarize skipped_own_cluster = sum(skipped_own_cluster), poison = sum(poison) by bin(timestamp, 5m)"
    watch_status_over_time   = "${local.watch} | summarize lines = count() by bin(timestamp, 5m), region_status = strcat(region, \" \", container, \": \", status)"
    watch_status_now         = "${local.watch} | summarize arg_max(timestamp, status, pending_changes, oldest_pending_seconds) by region, container | project region, container, status, pending_changes, oldest_pending_seconds, reported = timestamp | order by region asc, container asc"
    oldest_pending_change    = "${local.alert_queries.oldest_pending_change} | summarize oldest_pending_seconds = max(oldest_pending_seconds) by bin(timestamp, 5m), region_container = strcat(region, \" \", container)"
  }
}

locals {
  # The alerts that fired on one region's Application Insights, from Azure Resource Graph (which
  # keeps an alert 30 days): format() it with that Application Insights' resource id.
  fired_alerts_format = "alertsmanagementresources | where type =~ \"microsoft.alertsmanagement/alerts\" | where tostring(properties.essentials.targetResource) =~ \"%s\" | extend started = todatetime(tostring(properties.essentials.startDateTime)) | where started > ago(30d) | project started, alert = name, severity = tostring(properties.essentials.severity), condition = tostring(properties.essentials.monitorCondition), state = tostring(properties.essentials.alertState) | order by started desc"
}
