//! The object store: an S3-compatible bucket reached over HTTP(S).
//!
//! Requests are SigV4-presigned URLs (`rusty-s3`) sent with a blocking
//! client (`ureq`): no async runtime. Every request carries
//! `x-amz-content-sha256: UNSIGNED-PAYLOAD` (Garage refuses requests
//! without it); integrity of what is stored is checked by the log's own
//! crcs when it is read back, not by the transport.
//!
//! Server errors (5xx, 429) and failed connections are retried with
//! exponential backoff ([`RETRIES`] attempts); anything else (403 wrong
//! credentials, 404 no such bucket) fails at once with the server's code and
//! message.

use std::io::{Read, Write};
use std::time::Duration;

use rusty_s3::actions::{DeleteObject, GetObject, HeadObject, ListObjectsV2, PutObject, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use crate::Error;

/// Attempts per request when the server fails or cannot be reached.
pub const RETRIES: u32 = 6;
const SIGN_FOR: Duration = Duration::from_secs(3600);
/// How long a request waits for the server's answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `s3://BUCKET/PREFIX`: where a log's replica lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty (the bucket's root).
    pub prefix: String,
}

impl Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Location, Error> {
        let rest =
            s.strip_prefix("s3://").ok_or_else(|| Error::Usage(format!("{s}: not an s3://BUCKET/PREFIX address")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
            return Err(Error::Usage(format!(
                "{s}: bucket name {bucket:?} is not 3-63 characters of a-z, 0-9, '-' and '.'"
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(Error::Usage(format!("{s}: the prefix may not hold empty, '.' or '..' parts")));
        }
        Ok(Location { bucket: bucket.to_string(), prefix })
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// What keys under the prefix start with.
    pub fn dir(&self) -> String {
        self.key("")
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    /// `If-None-Match: *` and the key exists: nothing was written.
    Exists,
}

pub struct Store {
    pub loc: Location,
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    endpoint: String,
    /// Requests retried so far (server errors, failed connections).
    pub retried: std::cell::Cell<u64>,
}

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct Config {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
    /// None: AWS itself (`https://s3.REGION.amazonaws.com`, virtual-host style).
    pub endpoint: Option<String>,
    pub region: String,
    /// How long to wait for an answer to a request (`PAGELOG_S3_TIMEOUT`,
    /// seconds; default 60): a request unanswered that long is retried.
    pub timeout: Duration,
}

impl Config {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (required),
    /// `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL` (default: AWS itself),
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`).
    pub fn from_env() -> Result<Config, Error> {
        let (Some(key_id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) else {
            return Err(Error::Usage("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set".into()));
        };
        Ok(Config {
            key_id,
            secret,
            token: env("AWS_SESSION_TOKEN"),
            endpoint: env("AWS_ENDPOINT_URL"),
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
            timeout: match env("PAGELOG_S3_TIMEOUT") {
                None => DEFAULT_TIMEOUT,
                Some(t) => t
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| Error::Usage(format!("PAGELOG_S3_TIMEOUT={t:?} is not a number of seconds")))?,
            },
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
    }
}

impl Store {
    /// Connects to `loc` with the standard AWS variables (see [`Config::from_env`]).
    pub fn from_env(loc: Location) -> Result<Store, Error> {
        Store::new(loc, Config::from_env()?)
    }

    /// Connects to `loc`. Plain `http://` is accepted only for a loopback
    /// endpoint. Sends nothing yet.
    pub fn new(loc: Location, cfg: Config) -> Result<Store, Error> {
        let creds = match cfg.token {
            Some(t) => Credentials::new_with_token(cfg.key_id, cfg.secret, t),
            None => Credentials::new(cfg.key_id, cfg.secret),
        };
        let region = cfg.region;
        let (endpoint, style) = match cfg.endpoint {
            Some(e) => (e, UrlStyle::Path),
            None => (format!("https://s3.{region}.amazonaws.com"), UrlStyle::VirtualHost),
        };
        let url = url::Url::parse(&endpoint)
            .map_err(|e| Error::Usage(format!("AWS_ENDPOINT_URL {endpoint:?} is not a URL: {e}")))?;
        match (url.scheme(), url.host()) {
            ("https", Some(_)) => {}
            ("http", Some(h)) if is_loopback(&h) => {}
            ("http", Some(_)) => {
                return Err(Error::Usage(format!(
                    "AWS_ENDPOINT_URL {endpoint}: plain http is allowed only for a loopback endpoint; use https"
                )))
            }
            _ => return Err(Error::Usage(format!("AWS_ENDPOINT_URL {endpoint}: need an http(s)://HOST[:PORT] URL"))),
        }
        let bucket = Bucket::new(url, style, loc.bucket.clone(), region)
            .map_err(|e| Error::Usage(format!("bucket {}: {e}", loc.bucket)))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(cfg.timeout))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Store { loc, bucket, creds, agent, endpoint, retried: Default::default() })
    }

    /// Runs `attempt` until it succeeds or fails with an error that a retry
    /// cannot fix, sleeping 100 ms, 200 ms … (at most 5 s) between attempts.
    fn retry<T>(&self, what: &str, mut attempt: impl FnMut() -> Result<T, Attempt>) -> Result<T, Error> {
        let mut delay = Duration::from_millis(100);
        let mut n = 0;
        loop {
            n += 1;
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient(msg)) if n >= RETRIES => {
                    return Err(Error::Store(format!("{what}: {msg} (gave up after {n} attempts)")))
                }
                Err(Attempt::Transient(_)) => {
                    self.retried.set(self.retried.get() + 1);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn transport(&self, e: ureq::Error) -> Attempt {
        match e {
            ureq::Error::Io(io) => Attempt::Transient(format!("{}: {io}", self.endpoint)),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Timeout(_) => {
                Attempt::Transient(format!("{}: {e}", self.endpoint))
            }
            other => Attempt::Transient(format!("{}: {other}", self.endpoint)),
        }
    }

    /// An error response: retried when the server may recover. A fatal
    /// error names `what`; a transient one does not ([`Store::retry`] says
    /// `what` once when it gives up).
    fn status(&self, what: &str, resp: &mut ureq::http::Response<ureq::Body>) -> Attempt {
        let code = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let close = format!("</{t}>");
            body.find(&open).and_then(|i| {
                let rest = &body[i + open.len()..];
                rest.find(&close).map(|j| decode_entities(&rest[..j]))
            })
        };
        let detail = match (tag("Code"), tag("Message")) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c,
            _ => resp.status().canonical_reason().unwrap_or("error").to_string(),
        };
        let msg = format!("HTTP {code} {detail}");
        if code >= 500 || code == 429 {
            Attempt::Transient(msg)
        } else {
            Attempt::Fatal(Error::Store(format!("{what}: {msg}")))
        }
    }

    fn sha(
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        req.header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    }

    /// Every object whose key starts with `prefix`, in key order, following
    /// the listing's continuation tokens. `start_after`: only keys after it.
    pub fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Vec<Object>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let what = format!("list {}/{prefix}", self.loc.bucket);
            let page = self.retry(&what, || {
                let mut a = ListObjectsV2::new(&self.bucket, Some(&self.creds));
                a.with_prefix(prefix);
                if let Some(s) = start_after {
                    a.with_start_after(s);
                }
                if let Some(t) = &token {
                    a.with_continuation_token(t.as_str());
                }
                let url = a.sign(SIGN_FOR);
                let mut resp = Self::sha(self.agent.get(url.as_str())).call().map_err(|e| self.transport(e))?;
                if !resp.status().is_success() {
                    return Err(self.status(&what, &mut resp));
                }
                let body =
                    resp.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| self.transport(e))?;
                ListObjectsV2::parse_response(&body)
                    .map_err(|e| Attempt::Fatal(Error::Store(format!("{what}: unreadable listing: {e}"))))
            })?;
            for c in page.contents {
                let key = percent_encoding::percent_decode_str(&c.key).decode_utf8_lossy().into_owned();
                out.push(Object { key, size: c.size });
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Streams object `key` (bytes `range`, when given) into `w`; returns the
    /// bytes written. A retry after a partial write is the caller's to undo:
    /// `w(None)` starts each attempt, then `w(Some(bytes))` gets the body in
    /// order.
    pub fn get_into(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
        w: &mut dyn FnMut(Option<&[u8]>) -> std::io::Result<()>,
    ) -> Result<u64, Error> {
        let what = format!("get {}/{key}", self.loc.bucket);
        self.retry(&what, || {
            let url = GetObject::new(&self.bucket, Some(&self.creds), key).sign(SIGN_FOR);
            let mut req = Self::sha(self.agent.get(url.as_str()));
            if let Some((start, len)) = range {
                req = req.header("range", format!("bytes={start}-{}", start + len - 1));
            }
            let mut resp = req.call().map_err(|e| self.transport(e))?;
            if !resp.status().is_success() {
                return Err(self.status(&what, &mut resp));
            }
            w(None).map_err(|e| Attempt::Fatal(Error::Local(format!("{what}: {e}"))))?;
            let mut r = resp.body_mut().as_reader();
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Attempt::Transient(format!("{}: {e}", self.endpoint))),
                };
                w(Some(&buf[..n])).map_err(|e| Attempt::Fatal(Error::Local(format!("{what}: {e}"))))?;
                total += n as u64;
            }
            Ok(total)
        })
    }

    /// One cheap request (a listing of at most one key under the prefix),
    /// not retried: Ok when the store answers it. `replicate` and `follow`
    /// probe with it while they wait after a failed pass, so that they go
    /// on as soon as the store is back.
    pub fn probe(&self) -> Result<(), Error> {
        let what = format!("list {}/{}", self.loc.bucket, self.loc.dir());
        let mut a = ListObjectsV2::new(&self.bucket, Some(&self.creds));
        let dir = self.loc.dir();
        a.with_prefix(dir.as_str());
        a.with_max_keys(1);
        let url = a.sign(SIGN_FOR);
        let attempt = || -> Result<(), Attempt> {
            let mut resp = Self::sha(self.agent.get(url.as_str())).call().map_err(|e| self.transport(e))?;
            if !resp.status().is_success() {
                return Err(self.status(&what, &mut resp));
            }
            resp.body_mut().with_config().limit(1 << 20).read_to_vec().map_err(|e| self.transport(e))?;
            Ok(())
        };
        attempt().map_err(|a| match a {
            Attempt::Transient(msg) => Error::Store(format!("{what}: {msg}")),
            Attempt::Fatal(e) => e,
        })
    }

    /// Object `key` (or bytes `range` of it) in memory.
    pub fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        self.get_into(key, range, &mut |b| {
            match b {
                None => v.clear(),
                Some(b) => v.write_all(b)?,
            }
            Ok(())
        })?;
        Ok(v)
    }

    /// The object's size, or None when there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        let what = format!("head {}/{key}", self.loc.bucket);
        self.retry(&what, || {
            let url = HeadObject::new(&self.bucket, Some(&self.creds), key).sign(SIGN_FOR);
            let mut resp = Self::sha(self.agent.head(url.as_str())).call().map_err(|e| self.transport(e))?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(self.status(&what, &mut resp));
            }
            let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
            Ok(Some(len.unwrap_or(0)))
        })
    }

    /// Puts `len` bytes from `body()` (called again for each attempt) at
    /// `key`. `if_absent`: with `If-None-Match: *`, so that an existing
    /// object is never replaced ([`Put::Exists`]).
    pub fn put(
        &self,
        key: &str,
        len: u64,
        if_absent: bool,
        body: &mut dyn FnMut() -> std::io::Result<Box<dyn Read>>,
    ) -> Result<Put, Error> {
        let what = format!("put {}/{key}", self.loc.bucket);
        self.retry(&what, || {
            let url = PutObject::new(&self.bucket, Some(&self.creds), key).sign(SIGN_FOR);
            let mut req = self
                .agent
                .put(url.as_str())
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .header("content-length", len.to_string())
                .header("content-type", "application/octet-stream");
            if if_absent {
                req = req.header("if-none-match", "*");
            }
            let mut reader = body().map_err(|e| Attempt::Fatal(Error::Local(format!("{what}: {e}"))))?;
            let mut resp = req.send(ureq::SendBody::from_reader(&mut reader)).map_err(|e| self.transport(e))?;
            let code = resp.status().as_u16();
            if if_absent && (code == 412 || code == 409) {
                return Ok(Put::Exists);
            }
            if !resp.status().is_success() {
                return Err(self.status(&what, &mut resp));
            }
            Ok(Put::Created)
        })
    }

    /// Deletes `key` (no error when it does not exist).
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        let what = format!("delete {}/{key}", self.loc.bucket);
        self.retry(&what, || {
            let url = DeleteObject::new(&self.bucket, Some(&self.creds), key).sign(SIGN_FOR);
            let mut resp = Self::sha(self.agent.delete(url.as_str())).call().map_err(|e| self.transport(e))?;
            if !resp.status().is_success() && resp.status().as_u16() != 404 {
                return Err(self.status(&what, &mut resp));
            }
            Ok(())
        })
    }
}

enum Attempt {
    Transient(String),
    Fatal(Error),
}

/// Decodes the XML entities of an error message (`&quot;` and the like:
/// Garage's messages quote the names they refuse).
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&j| j <= 10).and_then(|j| {
            let c = match &rest[1..j] {
                "quot" => '"',
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "apos" => '\'',
                n => {
                    let code = match n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => n.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, j))
        });
        match decoded {
            Some((c, j)) => {
                out.push(c);
                rest = &rest[j + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{decode_entities, Location};

    #[test]
    fn entities_in_error_messages_are_decoded() {
        assert_eq!(decode_entities("Bucket &quot;bkt&quot; &amp; &lt;x&gt; &#39;y&#x27;"), "Bucket \"bkt\" & <x> 'y'");
        assert_eq!(decode_entities("a & b &bogus; &"), "a & b &bogus; &");
    }

    #[test]
    fn an_s3_address_splits_into_bucket_and_prefix() {
        let l = Location::parse("s3://bkt/a/b/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bkt", "a/b"));
        assert_eq!(l.key("x"), "a/b/x");
        assert_eq!(l.to_string(), "s3://bkt/a/b");
        let root = Location::parse("s3://bkt").unwrap();
        assert_eq!((root.key("x"), root.dir()), ("x".to_string(), "".to_string()));
        for bad in ["bkt/x", "s3://", "s3://B/x", "s3://ab/x", "s3://bkt/a//b", "s3://bkt/../x"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
