//! A fault-injecting HTTP proxy between pagelog and the S3 server, std only.
//!
//! Each client connection carries one request: the proxy reads its head and
//! body (by `content-length`), forwards it upstream on a new connection with
//! `connection: close`, reads the whole answer and passes it back, also with
//! `connection: close` (so that the client never reuses a connection the
//! proxy closed). A test arms [`Rule`]s; the first armed rule matching a
//! request (method and a substring of its path) applies its [`Fault`]:
//!
//! * [`Fault::DropAnswer`]: the request lands upstream, its answer is
//!   dropped and the connection closed (an endpoint that died after the
//!   write, a load balancer's timeout);
//! * [`Fault::ResetMidBody`]: half of the request body is read, then the
//!   connection is reset (nothing forwarded: the request never lands);
//! * [`Fault::Delay`]: the request lands, its answer is held that long
//!   (beyond the client's timeout) and then sent;
//! * [`Fault::Status503`]: answered 503 without forwarding (an XML error
//!   whose message holds `&quot;` entities).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    DropAnswer,
    ResetMidBody,
    Delay(Duration),
    Status503,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// `PUT`, `GET`…; None: any.
    pub method: Option<&'static str>,
    /// A substring of the request's path (and query); "" for any.
    pub path: String,
    pub fault: Fault,
    /// Matching requests let through unharmed before the fault applies.
    pub skip: u32,
    /// How many matching requests get the fault (u32::MAX: until cleared).
    pub times: u32,
}

impl Rule {
    pub fn new(method: Option<&'static str>, path: &str, fault: Fault) -> Rule {
        Rule { method, path: path.into(), fault, skip: 0, times: u32::MAX }
    }
    pub fn skip(mut self, n: u32) -> Rule {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: u32) -> Rule {
        self.times = n;
        self
    }
}

/// One request seen: method, path, and the fault applied (None: passed).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub fault: Option<Fault>,
    /// The upstream's status, when it was asked.
    pub status: Option<u16>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

pub struct Proxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream` (host:port).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state: Arc<Mutex<State>> = Default::default();
        let (st, up) = (state.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (st, up) = (st.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &st);
                });
            }
        });
        Proxy { endpoint, state }
    }

    pub fn arm(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests got `fault` (and, for those forwarded, were
    /// answered 2xx upstream: they landed).
    pub fn applied(&self, fault: Fault) -> (usize, usize) {
        let seen = self.seen();
        let hit: Vec<&Seen> = seen.iter().filter(|s| s.fault == Some(fault)).collect();
        let landed = hit.iter().filter(|s| s.status.is_some_and(|c| (200..300).contains(&c))).count();
        (hit.len(), landed)
    }
}

fn pick(st: &Mutex<State>, method: &str, path: &str) -> Option<Fault> {
    let mut s = st.lock().unwrap();
    for r in s.rules.iter_mut() {
        if r.method.is_some_and(|m| m != method) || !path.contains(&r.path) || r.times == 0 {
            continue;
        }
        if r.skip > 0 {
            r.skip -= 1;
            return None;
        }
        r.times -= 1;
        return Some(r.fault);
    }
    None
}

fn record(
    st: &Mutex<State>,
    t: std::time::Instant,
    method: &str,
    path: &str,
    fault: Option<Fault>,
    status: Option<u16>,
) {
    st.lock().unwrap().seen.push(Seen { method: method.into(), path: path.into(), fault, status, at: t });
}

/// Reads an HTTP head (through the blank line).
fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        let l = l.trim_end_matches(['\r', '\n']).to_string();
        if l.is_empty() {
            return Ok(lines);
        }
        lines.push(l);
    }
}

fn with_close(head: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, l) in head.iter().enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
        if i == 0 {
            out.push_str("connection: close\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn serve(client: TcpStream, upstream: &str, st: &Mutex<State>) -> std::io::Result<()> {
    let mut r = BufReader::new(client.try_clone()?);
    let head = read_head(&mut r)?;
    let arrived = std::time::Instant::now();
    let mut parts = head[0].split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let len: usize = head
        .iter()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let chunked = head.iter().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let fault = pick(st, &method, &path);
    let mut client = client;
    // The body as sent (chunked: with its chunk framing).
    let read_body = |r: &mut BufReader<TcpStream>, upto: usize| -> std::io::Result<Vec<u8>> {
        if !chunked {
            let mut b = vec![0u8; upto];
            r.read_exact(&mut b)?;
            return Ok(b);
        }
        let mut raw = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l)?;
            raw.extend_from_slice(l.as_bytes());
            let n = usize::from_str_radix(l.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut c = vec![0u8; n + 2];
            r.read_exact(&mut c)?;
            raw.extend_from_slice(&c);
            if n == 0 || raw.len() >= upto {
                return Ok(raw);
            }
        }
    };
    match fault {
        Some(Fault::ResetMidBody) => {
            read_body(&mut r, if chunked { 1 } else { len / 2 })?;
            record(st, arrived, &method, &path, fault, None);
            // SO_LINGER 0 would send an RST; closing both ways mid-body is
            // what the client sees of a reset connection either way.
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Status503) => {
            read_body(&mut r, if chunked { usize::MAX } else { len })?;
            record(st, arrived, &method, &path, fault, None);
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code>\
                       <Message>the proxy says &quot;not now&quot;</Message></Error>";
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(resp.as_bytes())?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    let body = read_body(&mut r, if chunked { usize::MAX } else { len })?;
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    up.write_all(&with_close(&head))?;
    up.write_all(&body)?;
    let mut ur = BufReader::new(up);
    let rhead = read_head(&mut ur)?;
    let status: Option<u16> = rhead[0].split(' ').nth(1).and_then(|c| c.parse().ok());
    let mut rest = Vec::new();
    // Everything after the head, to the upstream's close (HEAD: nothing).
    if method != "HEAD" {
        ur.read_to_end(&mut rest)?;
    }
    record(st, arrived, &method, &path, fault, status);
    match fault {
        Some(Fault::DropAnswer) => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Delay(d)) => std::thread::sleep(d),
        _ => {}
    }
    client.write_all(&with_close(&rhead))?;
    client.write_all(&rest)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}
