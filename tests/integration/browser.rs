//! A real headless Chromium for the dashboard tests, driven through chromedriver's
//! WebDriver HTTP API (plain JSON over HTTP, sent with the test kit's HTTP client),
//! and a loopback relay that can cut the browser off from a server.
//!
//! Debian's `chromium` and `chromium-driver` packages provide the browser and
//! `/usr/bin/chromedriver`; `.ci/run` installs them. Where they are missing,
//! [`Browser::start`] answers `None` after a loud message, and the test skips.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use concord_testkit::http::{parse_response, request_bytes, Response};
use concord_testkit::{free_addr, wait_for, Stderr, TopoProcess};
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// What one WebDriver command may take (a page load included).
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// The flags that make Chromium work headless in a container without a network.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// One chromedriver process with one browser session; both end on drop, and the
/// browser's profile directory is removed.
pub struct Browser {
    driver: TopoProcess,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height` pixels, or
    /// `None` (after saying so loudly) where none is installed.
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .filter(|path| !std::path::Path::new(path).exists())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!! SKIPPED: the dashboard's browser test needs {} \n\
                 !!! (apt-get install -y chromium chromium-driver; .ci/run does it)\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
                missing.join(" and ")
            );
            return None;
        }
        let addr = free_addr();
        let mut driver = TopoProcess::new(
            PathBuf::from(CHROMEDRIVER),
            vec![format!("--port={}", addr.port())],
        )
        .stderr(Stderr::Null);
        driver.spawn();
        driver.wait_until(Duration::from_secs(30), "chromedriver answers", || {
            exchange(addr, "GET", "/status", b"", Duration::from_secs(5))
                .is_ok_and(|r| r.status == 200)
        });
        let profile = tempfile::tempdir().expect("browser profile directory");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "SEVERE"},
        }}});
        let answer = command(addr, "POST", "/session", &capabilities);
        let session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        Some(Browser {
            driver,
            addr,
            session,
            _profile: profile,
        })
    }

    fn session_command(&self, method: &str, what: &str, body: &Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        command(self.addr, method, &path, body)
    }

    /// Loads `url` (returns once the page's load event fired).
    pub fn open(&self, url: &str) {
        self.session_command("POST", "url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body: `return ...;`) in the page; its JSON value.
    pub fn eval(&self, script: &str) -> Value {
        self.session_command(
            "POST",
            "execute/sync",
            &json!({"script": script, "args": []}),
        )
    }

    /// Polls `script` until it returns `true`; panics naming `what` after `limit`.
    pub fn wait_until(&self, limit: Duration, what: &str, script: &str) {
        wait_for(limit, what, || {
            (self.eval(script) == json!(true)).then_some(())
        });
    }

    /// The page's errors so far (uncaught exceptions, failed loads), as chromedriver
    /// reports its console log; each call returns the ones since the last.
    pub fn console_errors(&self) -> Vec<String> {
        let log = self.session_command("POST", "se/log", &json!({"type": "browser"}));
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let path = format!("/session/{}/screenshot", self.session);
        let encoded = command(self.addr, "GET", &path, &Value::Null);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a screenshot is a base64 string"))
            .expect("a screenshot is valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; killing chromedriver alone could leave it running.
        let path = format!("/session/{}", self.session);
        let _ = exchange(self.addr, "DELETE", &path, b"", Duration::from_secs(10));
        self.driver.kill();
    }
}

/// One WebDriver command; its `value`, or a panic with WebDriver's error.
fn command(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Value {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).expect("JSON")
    };
    let answer = exchange(addr, method, path, &body, COMMAND_LIMIT)
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    let mut parsed = answer.json();
    assert_eq!(
        answer.status, 200,
        "WebDriver {method} {path} failed: {parsed}"
    );
    parsed["value"].take()
}

/// One request to chromedriver. It keeps a connection open after its answer even
/// when asked to close it, so the answer is read up to its `Content-Length`, not to
/// the end of the connection (the test kit's client does the latter).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    limit: Duration,
) -> std::io::Result<Response> {
    let headers = [("Content-Type", "application/json")];
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(&request_bytes(addr, method, path, &headers, body))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        data.extend_from_slice(&buf[..n]);
        let whole = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .is_some_and(|end| {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                length.is_some_and(|length| data.len() >= end + 4 + length)
            });
        if n == 0 || whole {
            return parse_response(&data);
        }
    }
}

/// A TCP relay on a loopback port in front of one server, which a test can cut:
/// [`Relay::cut`] closes every relayed connection and refuses new ones (accepts and
/// closes them at once: a network error, which EventSource retries) until
/// [`Relay::heal`].
pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let relay = Relay {
            addr: listener.local_addr().expect("relay address"),
            cut: Arc::default(),
            stop: Arc::default(),
            open: Arc::default(),
        };
        let (cut, stop, open) = (relay.cut.clone(), relay.stop.clone(), relay.open.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(_) => continue,
                };
                if cut.load(Ordering::Relaxed) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                for stream in [&client, &server] {
                    open.extend(stream.try_clone().ok());
                }
                pump(&client, &server);
                pump(&server, &client);
            }
        });
        relay
    }

    /// Cuts the browser off: every relayed connection closes, new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
