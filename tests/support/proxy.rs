//! A forwarding HTTP proxy on loopback for the policy's `proxy` setting:
//! it takes absolute-form requests (`GET http://host:port/path HTTP/1.1`),
//! sends each to its origin over a connection of its own with
//! `Connection: close`, relays the answer and closes, and records every
//! request line it forwarded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A running proxy; it stops serving when the test process ends.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The request lines forwarded, as received.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = forward(stream, &log);
                });
            }
        });
        Proxy { url, seen }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn forward(client: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    let Some(rest) = target.strip_prefix("http://") else {
        let mut client = client;
        return client.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut head = format!("{method} {path} {version}\r\n");
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let trimmed = header.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let name = trimmed.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name == "content-length" {
            length = trimmed[name.len() + 1..].trim().parse().unwrap_or(0);
        }
        if name != "connection" && name != "proxy-connection" && name != "keep-alive" {
            head.push_str(trimmed);
            head.push_str("\r\n");
        }
    }
    head.push_str("connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    log.lock().unwrap().push(line.trim_end().to_owned());
    let mut origin = TcpStream::connect(authority)?;
    origin.write_all(head.as_bytes())?;
    origin.write_all(&body)?;
    let mut client = client;
    std::io::copy(&mut origin, &mut client)?;
    client.shutdown(std::net::Shutdown::Both)
}
