//! Serves Microsoft's in-memory Cosmos DB emulator (the Rust SDK driver's
//! `in_memory_emulator`) over plain HTTP on 127.0.0.1, so that the Python SDK
//! and the Functions extension's wire protocol can be tested without Docker.
//!
//! It also speaks three details of the service's wire protocol that the emulator
//! lacks and other SDKs (Microsoft's Java SDK, whose change feed processor the
//! tests run) rely on: paths by resource id (`/dbs/<database _rid>/colls/<container
//! _rid>/...`), the `x-ms-alt-content-path` and `x-ms-content-path` response
//! headers (the owner's path by name and its _rid), and an empty
//! `x-ms-continuation` request header, which means no continuation.
//!
//! It serves the all versions and deletes change feed, which the emulator keeps no
//! history for, from its own record of every document write (src/all_versions.rs).
//!
//! Usage: cosmos-emulator [--port PORT] [--without-all-versions-and-deletes]. PORT 0
//! (the default) takes a free port. --without-all-versions-and-deletes plays an
//! account without that feature: its change feed reads are refused as the service
//! refuses them. Once it listens, it prints `listening on 127.0.0.1:PORT` on stdout.
//! Exit codes: 1 failure, 2 usage, 6 the port is taken (as scripts/kafka).
//!
//! With COSMOS_EMULATOR_REQUEST_LOG=FILE it appends one JSON line per request to
//! FILE (method, path as sent and by name, the headers that tell which data-plane
//! action a request is, status), so that tests can see what a client asks for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};

use azure_core::http::{Method, Request, Url};
use azure_data_cosmos_driver::in_memory_emulator::{
    InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

mod all_versions;

const HOST: &str = "127.0.0.1";
// The region Microsoft's own (Docker) emulator reports, so that nothing tells them apart by name.
const REGION: &str = "South Central US";

type Response = hyper::Response<Full<Bytes>>;

const USAGE: &str = "usage: cosmos-emulator [--port PORT] [--without-all-versions-and-deletes]";

struct Options {
    port: u16,
    all_versions_and_deletes: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options { port: 0, all_versions_and_deletes: true };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let port = args.next().ok_or_else(|| USAGE.to_owned())?;
                options.port =
                    port.parse().map_err(|_| format!("--port wants a number from 0 to 65535, got {port:?}"))?;
            }
            "--without-all-versions-and-deletes" => options.all_versions_and_deletes = false,
            _ => return Err(USAGE.to_owned()),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("cosmos-emulator: {message}");
            return ExitCode::from(2);
        }
    };
    let port = options.port;
    let listener = match TcpListener::bind((HOST, port)).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!("cosmos-emulator: port {HOST}:{port} is already in use");
            return ExitCode::from(6);
        }
        Err(e) => {
            eprintln!("cosmos-emulator: cannot listen on {HOST}:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    // The emulator routes by the request URL's scheme, host and port, and advertises
    // this URL as the account's only region: clients come back to it for everything.
    let gateway = Url::parse(&format!("http://{HOST}:{port}/")).expect("a valid URL");
    let config = match VirtualAccountConfig::new(vec![VirtualRegion::new(REGION, gateway.clone())]) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cosmos-emulator: bad account configuration: {e}");
            return ExitCode::from(1);
        }
    };
    let emulator = Arc::new(Account {
        emulator: InMemoryEmulatorHttpClient::new(config),
        names: Mutex::default(),
        history: options.all_versions_and_deletes.then(all_versions::History::default),
    });
    println!("listening on {HOST}:{port}");
    let _ = std::io::stdout().flush();

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("cosmos-emulator: accept failed: {e}");
                continue;
            }
        };
        let account = Arc::clone(&emulator);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let account = Arc::clone(&account);
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(serve(&account, &gateway, request).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                if !e.is_incomplete_message() {
                    eprintln!("cosmos-emulator: connection error: {e}");
                }
            }
        });
    }
}

/// The emulator, what it told us of databases' and containers' resource ids, and the history of every document
/// write (None: an account without the all versions and deletes change feed).
struct Account {
    emulator: InMemoryEmulatorHttpClient,
    names: Mutex<Names>,
    history: Option<all_versions::History>,
}

/// A request for the emulator, in parts this crate may change.
#[derive(Clone)]
struct Call {
    method: Method,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>, // names in lower case
    body: Vec<u8>,
}

/// The emulator's answer, in parts this crate may change before it is sent.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// An error in the service's shape: `{"code", "message"}`.
    fn error(status: u16, message: &str) -> Self {
        let code = match status {
            400 => "BadRequest",
            404 => "NotFound",
            _ => "InternalServerError",
        };
        Answer {
            status,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-ms-request-charge".to_owned(), "0".to_owned()),
            ],
            body: serde_json::json!({ "code": code, "message": message }).to_string().into_bytes(),
        }
    }
}

/// Names and _rids of the databases and containers, learned by listing them when a path names one not
/// known yet, and forgotten whenever a database or container is created, replaced or deleted. A segment
/// is taken for a _rid only when it is no database's (or container's) name.
#[derive(Default)]
struct Names {
    database_rids: HashMap<String, String>,                   // name -> _rid
    database_names: HashMap<String, String>,                  // _rid -> name
    container_rids: HashMap<(String, String), String>,        // (database name, name) -> _rid
    container_names: HashMap<(String, String), String>,       // (database name, _rid) -> name
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Database,
    Container,
}

impl Account {
    /// Sends a call to the emulator, whose paths name databases and containers by name.
    async fn execute(&self, gateway: &Url, call: &Call) -> Answer {
        let mut url = gateway.clone();
        url.set_path(&call.path);
        url.set_query(call.query.as_deref());
        let mut request = Request::new(url, call.method.clone());
        for (name, value) in &call.headers {
            request.insert_header(name.clone(), value.clone());
        }
        request.set_body(call.body.clone());
        let response = match self.emulator.execute_request(&request).await {
            Ok(response) => response,
            Err(e) => return Answer::error(500, &format!("in-memory emulator error: {e}")),
        };
        let raw = match response.try_into_raw_response().await {
            Ok(raw) => raw,
            Err(e) => return Answer::error(500, &format!("cannot read the emulator's response: {e}")),
        };
        Answer {
            status: u16::from(raw.status()),
            headers: raw.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned())).collect(),
            body: raw.body().as_ref().to_vec(),
        }
    }

    /// (name, _rid) of a database or container named by name or by _rid; None when it does not exist.
    async fn resolve(&self, gateway: &Url, kind: Kind, database: &str, segment: &str) -> Option<(String, String)> {
        if let Some(found) = self.lookup(kind, database, segment) {
            return Some(found);
        }
        self.refresh(gateway, kind, database).await;
        self.lookup(kind, database, segment)
    }

    fn lookup(&self, kind: Kind, database: &str, segment: &str) -> Option<(String, String)> {
        let names = self.names.lock().expect("the names lock");
        let key = |s: &str| (database.to_owned(), s.to_owned());
        let (by_name, by_rid) = match kind {
            Kind::Database => (names.database_rids.get(segment), names.database_names.get(segment)),
            Kind::Container => (names.container_rids.get(&key(segment)), names.container_names.get(&key(segment))),
        };
        match (by_name, by_rid) {
            (Some(rid), _) => Some((segment.to_owned(), rid.clone())),
            (None, Some(name)) => Some((name.clone(), segment.to_owned())),
            (None, None) => None,
        }
    }

    /// Lists the databases (or a database's containers) through the emulator and records their names and _rids.
    async fn refresh(&self, gateway: &Url, kind: Kind, database: &str) {
        let (path, field) = match kind {
            Kind::Database => ("/dbs".to_owned(), "Databases"),
            Kind::Container => (format!("/dbs/{database}/colls"), "DocumentCollections"),
        };
        let mut url = gateway.clone();
        url.set_path(&path);
        let mut request = Request::new(url, Method::Get);
        request.insert_header("x-ms-max-item-count", "-1");
        let Ok(response) = self.emulator.execute_request(&request).await else { return };
        let Ok(raw) = response.try_into_raw_response().await else { return };
        if u16::from(raw.status()) != 200 {
            return;
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(raw.body().as_ref()) else { return };
        let listed: Vec<(String, String)> = body[field]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| Some((item["id"].as_str()?.to_owned(), item["_rid"].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let mut names = self.names.lock().expect("the names lock");
        match kind {
            Kind::Database => {
                names.database_rids = listed.iter().cloned().collect();
                names.database_names = listed.into_iter().map(|(name, rid)| (rid, name)).collect();
            }
            Kind::Container => {
                names.container_rids.retain(|(db, _), _| db != database);
                names.container_names.retain(|(db, _), _| db != database);
                for (name, rid) in listed {
                    names.container_rids.insert((database.to_owned(), name.clone()), rid.clone());
                    names.container_names.insert((database.to_owned(), rid), name);
                }
            }
        }
    }

    /// The path with a database's and a container's _rid replaced by their names, and the response's
    /// (x-ms-alt-content-path, x-ms-content-path): the owner of the addressed resource, by name and by _rid,
    /// as the service sends them (dbs/<db> for a container or a container feed; dbs/<db>/colls/<c> for
    /// anything inside a container; none for the account and databases).
    async fn by_name(&self, gateway: &Url, path: &str) -> (String, Option<(String, String)>) {
        let mut segments: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_owned).collect();
        if segments.len() < 2 || segments[0] != "dbs" || segments[1].is_empty() {
            return (path.to_owned(), None);
        }
        let Some((database, database_rid)) = self.resolve(gateway, Kind::Database, "", &segments[1]).await else {
            return (path.to_owned(), None);
        };
        segments[1] = database.clone();
        let mut owner = (segments.len() >= 3).then(|| (format!("dbs/{database}"), database_rid));
        if segments.len() >= 4 && segments[2] == "colls" && !segments[3].is_empty() {
            match self.resolve(gateway, Kind::Container, &database, &segments[3]).await {
                Some((container, container_rid)) => {
                    segments[3] = container.clone();
                    if segments.len() >= 5 {
                        owner = Some((format!("dbs/{database}/colls/{container}"), container_rid));
                    }
                }
                // Inside a container that does not exist: the emulator answers 404, with no owner to name.
                None if segments.len() >= 5 => owner = None,
                None => {}
            }
        }
        (format!("/{}", segments.join("/")), owner)
    }
}

async fn serve(account: &Account, gateway: &Url, request: hyper::Request<Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return plain(400, format!("cannot read the request body: {e}")),
    };
    let method: Method = match parts.method.as_str().parse() {
        Ok(method) => method,
        Err(_) => return plain(405, format!("method {} is not supported", parts.method)),
    };
    // The Python SDK ends resource paths with a slash (`/dbs/db/colls/c/docs/`), which
    // the emulator's router does not accept; the service itself ignores it.
    let path = parts.uri.path();
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let (path, owner) = account.by_name(gateway, path).await;
    // A database or container created, replaced or deleted: what we knew of names and _rids may be stale.
    let changes_names = method != Method::Get && path.trim_start_matches('/').split('/').count() <= 4;
    // The Java SDK sends an empty continuation on a query's first page; the service reads it as none.
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .filter(|(name, value)| !(name == "x-ms-continuation" && value.trim().is_empty()))
        .collect();
    let call = Call { method, path, query: parts.uri.query().map(str::to_owned), headers, body: body.to_vec() };

    let answer = match all_versions::Intercept::of(&call) {
        Some(intercept) => all_versions::serve(account, gateway, &call, owner.as_ref(), intercept).await,
        None => account.execute(gateway, &call).await,
    };
    if changes_names {
        *account.names.lock().expect("the names lock") = Names::default();
    }
    record_request(&parts, &call.path, answer.status);
    let mut builder = hyper::Response::builder().status(answer.status);
    let mut has_owner = false;
    for (name, value) in &answer.headers {
        has_owner |= matches!(name.as_str(), "x-ms-alt-content-path" | "x-ms-content-path");
        // hyper frames the body itself.
        if !matches!(name.as_str(), "content-length" | "transfer-encoding") {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    if let (Some((owner_path, owner_rid)), false) = (owner, has_owner) {
        builder = builder.header("x-ms-alt-content-path", owner_path).header("x-ms-content-path", owner_rid);
    }
    builder
        .body(Full::new(Bytes::from(answer.body)))
        .unwrap_or_else(|e| plain(500, format!("the emulator's response is not valid HTTP: {e}")))
}

/// The request log (COSMOS_EMULATOR_REQUEST_LOG), opened on the first request; None when not asked for.
static REQUEST_LOG: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
// The request headers that, with the method and path, tell which data-plane action a request is.
const LOGGED_HEADERS: [&str; 7] = [
    "a-im",
    "content-type",
    "if-match",
    "user-agent",
    "x-ms-cosmos-is-query-plan-request",
    "x-ms-documentdb-is-upsert",
    "x-ms-documentdb-isquery",
];

fn record_request(parts: &hyper::http::request::Parts, by_name: &str, status: u16) {
    let log = REQUEST_LOG.get_or_init(|| {
        let path = std::env::var_os("COSMOS_EMULATOR_REQUEST_LOG")?;
        match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => Some(Mutex::new(file)),
            Err(e) => {
                eprintln!("cosmos-emulator: cannot open the request log {path:?}: {e}");
                None
            }
        }
    });
    let Some(log) = log else { return };
    let headers: serde_json::Map<String, serde_json::Value> = LOGGED_HEADERS
        .iter()
        .filter_map(|name| Some((name.to_string(), parts.headers.get(*name)?.to_str().ok()?.into())))
        .collect();
    let line = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "by_name": by_name,
        "headers": headers,
        "status": status,
    });
    if let Ok(mut file) = log.lock() {
        let _ = writeln!(file, "{line}");
    }
}

fn plain(status: u16, message: String) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
