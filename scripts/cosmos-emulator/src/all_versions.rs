//! The all versions and deletes change feed (AVAD, the wire's "Full-Fidelity Feed"), which the driver's emulator
//! does not keep: it stores each document's latest state only and, asked for this feed, labels every current
//! document a create (`change_feed_envelope` in its in_memory_emulator/operations.rs). Here every document write
//! the emulator commits is recorded, in commit order, and a change feed read with `A-IM: Full-Fidelity Feed` is
//! answered from that record.
//!
//! A change is what the service sends (MicrosoftDocs/azure-databases-docs,
//! articles/cosmos-db/nosql/change-feed-modes.md, "Parse the response object"), in the field names the SDKs parse
//! (azure-cosmos-dotnet-v3: Microsoft.Azure.Cosmos/src/Resource/FullFidelity/ChangeFeedItem.cs,
//! ChangeFeedMetadata.cs, ChangeFeedMetadataFields.cs; azure-sdk-for-java: sdk/cosmos/azure-cosmos
//! models/ChangeFeedProcessorItem.java, ChangeFeedMetaData.java; azure-sdk-for-python hands each one over as it is):
//!
//! ```text
//! {"current": <the document as stored>, "metadata": {"operationType": "create", "lsn", "crts"}}
//! {"current": <...>, "metadata": {"operationType": "replace", "lsn", "crts", "previousImageLSN"}}
//! {"metadata": {"operationType": "delete", "lsn", "crts", "previousImageLSN", "timeToLiveExpired": false,
//!               "id", "partitionKey": {"<partition key path without '/'>": <value>}}}
//! ```
//!
//! `lsn` is the emulator's LSN of the write in its partition (the `lsn` header of its response), `crts` the document's `_ts`
//! (a delete's own time), `previousImageLSN` the LSN of the version replaced or deleted. `previous`, the version
//! before, is added to replaces and deletes only where the container keeps previous images:
//! `previousImageRetentionPolicy.supportedFeatures.allVersionsAndDeletes.mode` (or the older top-level `mode`),
//! bit 1 for replaces, bit 2 for deletes (azure-sdk-for-java: models/CosmosChangeFeedPreviousImageRetentionMode.java,
//! and the wire form in PreviousImageRetentionPolicyTest.java).
//!
//! A read starts from now (`If-None-Match: *`) or from an etag a read returned. A start from the beginning (no
//! `If-None-Match`) or from a point in time (`If-Modified-Since`) is 400 with the driver's own messages
//! (`reject_unsupported_full_fidelity_start`), as the service refuses them. The etag has the service's form, the
//! LSN of the last change handed out, quoted (`"12"`); a page holds at most `x-ms-max-item-count` changes; nothing
//! new is 304 with the etag unchanged. A read covers one partition key range, as the SDKs ask for it (Python's
//! `ChangeFeedStateV2`, the Java processor: `x-ms-documentdb-partitionkeyrangeid`), narrowed by
//! `x-ms-start-epk`/`x-ms-end-epk` or by a partition key.
//!
//! An account without the feature (`--without-all-versions-and-deletes`) records nothing and answers every such
//! read 400 "Change Feed 'All Versions and Deletes' mode must be enabled.", the service's answer to an account
//! without the opt-in, as azure-sdk-for-rust PR #4904 quotes it (no substatus is given there; none is sent).
//!
//! Not recorded: transactional batches and bulk (`x-ms-cosmos-is-batch-request`), which nothing here sends.
//! Never forgotten: there is no backup window, and the emulator expires no document by its ttl, so
//! `timeToLiveExpired` is always false.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::http::{Method, Url};
use azure_data_cosmos_driver::models::{
    EffectivePartitionKey, FeedRange, PartitionKey, PartitionKeyDefinition, PartitionKeyValue,
};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use crate::{Account, Answer, Call};

const FULL_FIDELITY: &str = "Full-Fidelity Feed";
const NOT_ENABLED: &str = "Change Feed 'All Versions and Deletes' mode must be enabled.";
const PARTITION_KEY: &str = "x-ms-documentdb-partitionkey";
const RANGE_ID: &str = "x-ms-documentdb-partitionkeyrangeid";
const LSN: &str = "lsn"; // the LSN header the emulator and the service send
const REPLACES: u64 = 1;
const DELETES: u64 = 2;

/// Every container's changes since the emulator started. One lock serves writes and reads: a write holds it from
/// before the emulator commits until its change is recorded, so a read never sees a later LSN before an earlier one.
#[derive(Default)]
pub struct History {
    containers: Mutex<HashMap<String, Changes>>, // by the container's _rid
}

/// One container's changes in commit order, and the LSN of each live document's latest version.
#[derive(Default)]
struct Changes {
    changes: Vec<Change>,
    latest_lsn: HashMap<(String, String), u64>, // (partition key as JSON, id) -> LSN
}

struct Change {
    range: String,
    lsn: u64,
    epk: Option<EffectivePartitionKey>,
    record: Value,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Write {
    Create,
    Upsert,
    Replace,
    Delete,
}

/// A request this module answers or records.
pub enum Intercept {
    Write(Write),
    Read,
}

impl Intercept {
    pub fn of(call: &Call) -> Option<Self> {
        let segments: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
        if segments.len() < 5 || segments[0] != "dbs" || segments[2] != "colls" || segments[4] != "docs" {
            return None;
        }
        let flag = |name: &str| call.header(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let query = ["x-ms-documentdb-isquery", "x-ms-documentdb-query", "x-ms-cosmos-is-query-plan-request"]
            .iter()
            .any(|name| flag(name))
            || call.header("content-type").is_some_and(|v| v.starts_with("application/query+json"));
        match (&call.method, segments.len()) {
            (Method::Get, 5) if call.header("a-im").is_some_and(|v| v.eq_ignore_ascii_case(FULL_FIDELITY)) => {
                Some(Self::Read)
            }
            (Method::Post, 5) if !query && !flag("x-ms-cosmos-is-batch-request") => {
                Some(Self::Write(if flag("x-ms-documentdb-is-upsert") { Write::Upsert } else { Write::Create }))
            }
            (Method::Put | Method::Patch, 6) => Some(Self::Write(Write::Replace)),
            (Method::Delete, 6) => Some(Self::Write(Write::Delete)),
            _ => None,
        }
    }
}

/// Answers an AVAD read, or makes a document write and records its change. `container` is the owner that
/// `Account::by_name` found: (`dbs/<db>/colls/<container>`, the container's _rid); None when it does not exist.
pub async fn serve(
    account: &Account,
    gateway: &Url,
    call: &Call,
    container: Option<&(String, String)>,
    intercept: Intercept,
) -> Answer {
    match (&account.history, container, intercept) {
        (None, _, Intercept::Read) => Answer::error(400, NOT_ENABLED),
        (Some(history), Some(container), Intercept::Read) => read(history, account, gateway, call, container).await,
        (Some(history), Some(container), Intercept::Write(write)) => {
            record(history, account, gateway, call, container, write).await
        }
        _ => account.execute(gateway, call).await,
    }
}

// -- writes --------------------------------------------------------------------------------------------------------

async fn record(
    history: &History,
    account: &Account,
    gateway: &Url,
    call: &Call,
    (container_path, container_rid): &(String, String),
    write: Write,
) -> Answer {
    let mut containers = history.containers.lock().await;
    let properties = get(account, gateway, &format!("/{container_path}"), None).await.unwrap_or(Value::Null);
    let definition: Option<PartitionKeyDefinition> = serde_json::from_value(properties["partitionKey"].clone()).ok();
    let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let document_path = match write {
        Write::Create | Write::Upsert => match body["id"].as_str() {
            Some(id) => format!("{}/{}", call.path, percent_encoded(id)),
            None => return account.execute(gateway, call).await, // the emulator refuses it
        },
        Write::Replace | Write::Delete => call.path.clone(),
    };
    let partition_key = match call.header(PARTITION_KEY) {
        Some(header) => serde_json::from_str(header).unwrap_or(Value::Null),
        None => partition_key_of(&body, definition.as_ref()),
    };
    let partition_key_header = partition_key.to_string();
    let before = match write {
        Write::Create => None,
        _ => get(account, gateway, &document_path, Some(&partition_key_header)).await,
    };

    let answer = account.execute(gateway, call).await;
    if !(200..300).contains(&answer.status) {
        return answer;
    }
    let (Some(range), Some(lsn)) = (answer.header(RANGE_ID), answer.header(LSN).and_then(|v| v.parse().ok()))
    else {
        eprintln!("cosmos-emulator: a write to {document_path} answered no partition key range or LSN; not recorded");
        return answer;
    };
    let current = match write {
        Write::Delete => None,
        _ => get(account, gateway, &document_path, Some(&partition_key_header)).await,
    };
    let Some(id) = current.as_ref().or(before.as_ref()).and_then(|d| d["id"].as_str()).map(str::to_owned) else {
        return answer;
    };
    let changes = containers.entry(container_rid.clone()).or_default();
    let key = (partition_key_header, id.clone());
    let previous_lsn = changes.latest_lsn.get(&key).copied();
    let keeps = previous_image_mode(&properties);
    let mut metadata = Map::new();
    let mut record = Map::new();
    match current {
        Some(current) => {
            let replaced = before.is_some();
            metadata.insert("operationType".into(), json!(if replaced { "replace" } else { "create" }));
            metadata.insert("lsn".into(), json!(lsn));
            metadata.insert("crts".into(), current["_ts"].clone());
            if replaced {
                metadata.insert("previousImageLSN".into(), json!(previous_lsn.unwrap_or(0)));
            }
            if let (true, Some(before)) = (keeps & REPLACES != 0, before) {
                record.insert("previous".into(), before);
            }
            record.insert("current".into(), current);
            changes.latest_lsn.insert(key.clone(), lsn);
        }
        None => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            metadata.insert("operationType".into(), json!("delete"));
            metadata.insert("lsn".into(), json!(lsn));
            metadata.insert("crts".into(), json!(now));
            metadata.insert("previousImageLSN".into(), json!(previous_lsn.unwrap_or(0)));
            metadata.insert("timeToLiveExpired".into(), json!(false));
            metadata.insert("id".into(), json!(id));
            metadata.insert("partitionKey".into(), partition_key_by_path(&partition_key, definition.as_ref()));
            if let (true, Some(before)) = (keeps & DELETES != 0, before) {
                record.insert("previous".into(), before);
            }
            changes.latest_lsn.remove(&key);
        }
    }
    record.insert("metadata".into(), Value::Object(metadata));
    let epk = definition.as_ref().and_then(|definition| epk_of(&partition_key, definition));
    changes.changes.push(Change { range: range.to_owned(), lsn, epk, record: Value::Object(record) });
    answer
}

/// A document's (or container's) JSON through the emulator; None unless it answers 200.
async fn get(account: &Account, gateway: &Url, path: &str, partition_key: Option<&str>) -> Option<Value> {
    let mut headers = vec![("x-ms-version".to_owned(), "2020-07-15".to_owned())];
    if let Some(partition_key) = partition_key {
        headers.push((PARTITION_KEY.to_owned(), partition_key.to_owned()));
    }
    let call = Call { method: Method::Get, path: path.to_owned(), query: None, headers, body: Vec::new() };
    let answer = account.execute(gateway, &call).await;
    (answer.status == 200).then(|| serde_json::from_slice(&answer.body).ok()).flatten()
}

/// The partition key values of a document, as the `x-ms-documentdb-partitionkey` header names them (`{}` where the
/// document lacks the path).
fn partition_key_of(document: &Value, definition: Option<&PartitionKeyDefinition>) -> Value {
    let values = definition
        .map(|definition| {
            definition
                .paths()
                .iter()
                .map(|path| document.pointer(path).cloned().unwrap_or_else(|| json!({})))
                .collect()
        })
        .unwrap_or_default();
    Value::Array(values)
}

/// A delete's `metadata.partitionKey`: each partition key path without its leading `/`, with its value
/// (ChangeFeedMetadata.cs: "the partition key path name (without the leading '/')").
fn partition_key_by_path(partition_key: &Value, definition: Option<&PartitionKeyDefinition>) -> Value {
    let values = partition_key.as_array().cloned().unwrap_or_default();
    let paths = definition.map(|d| d.paths().to_vec()).unwrap_or_default();
    Value::Object(
        paths.iter().zip(values).map(|(path, value)| (path.trim_start_matches('/').to_owned(), value)).collect(),
    )
}

/// The container's previous image retention mode for this feed (0 when it keeps none).
fn previous_image_mode(container: &Value) -> u64 {
    let policy = &container["previousImageRetentionPolicy"];
    policy["supportedFeatures"]["allVersionsAndDeletes"]["mode"].as_u64().or_else(|| policy["mode"].as_u64()).unwrap_or(0)
}

/// The effective partition key of a partition key value, hashed by the driver's own code.
fn epk_of(partition_key: &Value, definition: &PartitionKeyDefinition) -> Option<EffectivePartitionKey> {
    let values = partition_key
        .as_array()?
        .iter()
        .map(|value| match value {
            Value::String(s) => Some(PartitionKeyValue::from(s.clone())),
            Value::Number(n) => PartitionKeyValue::try_from(n.as_f64()?).ok(),
            Value::Bool(b) => Some(PartitionKeyValue::from(*b)),
            Value::Null => Some(PartitionKeyValue::NULL),
            Value::Object(o) if o.is_empty() => Some(PartitionKeyValue::UNDEFINED),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let partition_key = PartitionKey::try_from(values).ok()?;
    Some(FeedRange::for_partition(partition_key, definition).min_inclusive().clone())
}

fn percent_encoded(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// -- reads ---------------------------------------------------------------------------------------------------------

async fn read(
    history: &History,
    account: &Account,
    gateway: &Url,
    call: &Call,
    (container_path, container_rid): &(String, String),
) -> Answer {
    let refused = |start: &str| {
        Answer::error(
            400,
            &format!(
                "The AllVersionsAndDeletes change feed mode does not support {start}; start from Now or resume \
                 from a continuation token."
            ),
        )
    };
    let resume = match (call.header("if-none-match"), call.header("if-modified-since")) {
        (_, Some(_)) => return refused("a point-in-time start"),
        (None, None) => return refused("a start from the beginning"),
        (Some(etag), None) => etag.to_owned(),
    };
    let containers = history.containers.lock().await;
    // The latest-version feed from now, for the same scope: the emulator checks the container, the partition key
    // range (410 once it is gone) and the session, and names the range and its LSN, as for any change feed read.
    let mut probe = call.clone();
    probe.headers.retain(|(name, _)| {
        !matches!(name.as_str(), "a-im" | "if-none-match" | "if-modified-since" | "x-ms-cosmos-changefeed-wire-format-version")
    });
    probe.headers.push(("a-im".to_owned(), "Incremental Feed".to_owned()));
    probe.headers.push(("if-none-match".to_owned(), "*".to_owned()));
    let mut answer = account.execute(gateway, &probe).await;
    if !matches!(answer.status, 200 | 304) {
        return answer;
    }
    let Some(range) = answer.header(RANGE_ID).map(str::to_owned) else {
        return Answer::error(
            400,
            "the emulator serves the AllVersionsAndDeletes change feed one partition key range at a time: name one \
             with x-ms-documentdb-partitionkeyrangeid, or a feed range or partition key within one",
        );
    };
    let scope = match scope(account, gateway, call, container_path).await {
        Ok(scope) => scope,
        Err(message) => return Answer::error(400, &message),
    };
    let after = match resume.as_str() {
        "*" => None,
        etag => match etag.trim_matches('"').parse::<u64>() {
            Ok(lsn) => Some(lsn),
            Err(_) => return Answer::error(400, &format!("Invalid change feed continuation {etag:?}")),
        },
    };
    let limit = call.header("x-ms-max-item-count").and_then(|v| v.parse::<i64>().ok()).filter(|n| *n > 0);

    let in_range: Vec<&Change> = containers
        .get(container_rid)
        .map(|c| c.changes.iter().filter(|c| c.range == range && scope.holds(c.epk.as_ref())).collect())
        .unwrap_or_default();
    // From now: after the range's latest LSN (the probe's), or its latest change here.
    let now = answer.header(LSN).and_then(|v| v.parse().ok());
    let after = after.unwrap_or_else(|| now.or(in_range.last().map(|c| c.lsn)).unwrap_or(0));
    let page: Vec<&Change> = in_range
        .into_iter()
        .filter(|c| c.lsn > after)
        .take(limit.map_or(usize::MAX, |n| n as usize))
        .collect();

    answer.headers.retain(|(name, _)| !matches!(name.as_str(), "etag" | "content-type" | "x-ms-item-count"));
    let etag = format!("\"{}\"", page.last().map_or(after, |c| c.lsn));
    answer.headers.push(("etag".to_owned(), etag));
    if page.is_empty() {
        answer.status = 304;
        answer.body = Vec::new();
        return answer;
    }
    let records: Vec<Value> = page.iter().map(|c| c.record.clone()).collect();
    answer.status = 200;
    answer.headers.push(("x-ms-item-count".to_owned(), records.len().to_string()));
    answer.headers.push(("content-type".to_owned(), "application/json".to_owned()));
    answer.body = json!({"_rid": container_rid, "Documents": records, "_count": records.len()}).to_string().into_bytes();
    answer
}

/// Which effective partition keys a read covers within its partition key range.
enum Scope {
    Whole,
    Key(EffectivePartitionKey),
    Range(Option<EffectivePartitionKey>, Option<EffectivePartitionKey>),
}

impl Scope {
    fn holds(&self, epk: Option<&EffectivePartitionKey>) -> bool {
        match (self, epk) {
            (Self::Whole, _) => true,
            (Self::Key(key), Some(epk)) => key == epk,
            // A range whose ends are equal is one effective partition key (FeedRange::max_exclusive's note).
            (Self::Range(Some(min), Some(max)), Some(epk)) if min == max => epk == min,
            (Self::Range(min, max), Some(epk)) => {
                min.as_ref().is_none_or(|min| epk >= min) && max.as_ref().is_none_or(|max| epk < max)
            }
            (_, None) => false,
        }
    }
}

async fn scope(account: &Account, gateway: &Url, call: &Call, container_path: &str) -> Result<Scope, String> {
    let epk_header = |name: &str| {
        call.header(name)
            .filter(|v| !v.is_empty())
            .map(|v| EffectivePartitionKey::try_from(v).map_err(|e| format!("bad {name}: {e}")))
            .transpose()
    };
    let (min, max) = (epk_header("x-ms-start-epk")?, epk_header("x-ms-end-epk")?);
    if min.is_some() || max.is_some() {
        return Ok(Scope::Range(min, max));
    }
    let Some(header) = call.header(PARTITION_KEY).filter(|v| !v.trim().is_empty() && v.trim() != "[]") else {
        return Ok(Scope::Whole);
    };
    let partition_key: Value = serde_json::from_str(header).map_err(|e| format!("bad {PARTITION_KEY}: {e}"))?;
    let properties = get(account, gateway, &format!("/{container_path}"), None).await.unwrap_or(Value::Null);
    let definition: PartitionKeyDefinition = serde_json::from_value(properties["partitionKey"].clone())
        .map_err(|e| format!("the container's partition key definition: {e}"))?;
    epk_of(&partition_key, &definition).map(Scope::Key).ok_or_else(|| format!("bad {PARTITION_KEY}: {header}"))
}
