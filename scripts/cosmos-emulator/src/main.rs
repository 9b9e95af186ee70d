//! Serves Microsoft's in-memory Cosmos DB emulator (the Rust SDK driver's
//! `in_memory_emulator`) over plain HTTP on 127.0.0.1, so that the Python SDK
//! and the Functions extension's wire protocol can be tested without Docker.
//!
//! Usage: cosmos-emulator [--port PORT]. PORT 0 (the default) takes a free
//! port. Once it listens, it prints `listening on 127.0.0.1:PORT` on stdout.
//! Exit codes: 1 failure, 2 usage, 6 the port is taken (as scripts/kafka).

use std::convert::Infallible;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

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

const HOST: &str = "127.0.0.1";
// The region Microsoft's own (Docker) emulator reports, so that nothing tells them apart by name.
const REGION: &str = "South Central US";

type Response = hyper::Response<Full<Bytes>>;

fn parse_port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(0),
        [flag, port] if flag == "--port" => port
            .parse()
            .map_err(|_| format!("--port wants a number from 0 to 65535, got {port:?}")),
        _ => Err("usage: cosmos-emulator [--port PORT]".to_owned()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let port = match parse_port() {
        Ok(port) => port,
        Err(message) => {
            eprintln!("cosmos-emulator: {message}");
            return ExitCode::from(2);
        }
    };
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
    let emulator = Arc::new(InMemoryEmulatorHttpClient::new(config));
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
        let emulator = Arc::clone(&emulator);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let emulator = Arc::clone(&emulator);
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(serve(&emulator, &gateway, request).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                if !e.is_incomplete_message() {
                    eprintln!("cosmos-emulator: connection error: {e}");
                }
            }
        });
    }
}

async fn serve(emulator: &InMemoryEmulatorHttpClient, gateway: &Url, request: hyper::Request<Incoming>) -> Response {
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
    let mut url = gateway.clone();
    url.set_path(path);
    url.set_query(parts.uri.query());

    let mut core_request = Request::new(url, method);
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            core_request.insert_header(name.as_str().to_owned(), value.to_owned());
        }
    }
    core_request.set_body(body.to_vec());

    let response = match emulator.execute_request(&core_request).await {
        Ok(response) => response,
        Err(e) => return plain(500, format!("in-memory emulator error: {e}")),
    };
    let raw = match response.try_into_raw_response().await {
        Ok(raw) => raw,
        Err(e) => return plain(500, format!("cannot read the emulator's response: {e}")),
    };
    let mut builder = hyper::Response::builder().status(u16::from(raw.status()));
    for (name, value) in raw.headers().iter() {
        // hyper frames the body itself.
        if !matches!(name.as_str(), "content-length" | "transfer-encoding") {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let body = Bytes::copy_from_slice(raw.body().as_ref());
    builder
        .body(Full::new(body))
        .unwrap_or_else(|e| plain(500, format!("the emulator's response is not valid HTTP: {e}")))
}

fn plain(status: u16, message: String) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
