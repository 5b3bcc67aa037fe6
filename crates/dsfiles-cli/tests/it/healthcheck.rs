//! `dsfiles healthcheck`, the image's `HEALTHCHECK`: against a real `dsfiles serve`, and
//! against scripted answers for what a real service should never say.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Child, Stdio};

use crate::{dsfiles, stderr};

/// `dsfiles serve` on a free loopback port, with a state directory of its own; killed on drop.
struct Serve {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Serve {
    fn start() -> Serve {
        let state = tempfile::tempdir().unwrap();
        let mut child = dsfiles()
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state.path())
            .env("DSFILES_API_TOKENS", "healthcheck-test-token")
            .env("DS_API_TOKEN", "ds-token")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut port = None;
        for line in lines {
            let line = line.unwrap();
            if let Some(rest) = line.split("address=127.0.0.1:").nth(1) {
                port = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|p| p.parse().ok());
                break;
            }
        }
        let port = port.expect("`dsfiles serve` logs its address");
        Serve {
            child,
            port,
            _state: state,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn healthcheck(args: &[&str], listen: Option<&str>) -> (Option<i32>, String) {
    let mut command = dsfiles();
    command.arg("healthcheck").args(args);
    if let Some(listen) = listen {
        command.env("DSFILES_LISTEN", listen);
    }
    let output = command.output().unwrap();
    assert!(output.stdout.is_empty());
    (output.status.code(), stderr(&output))
}

#[test]
fn a_running_service_is_healthy_and_ready() {
    let serve = Serve::start();
    let base = format!("http://127.0.0.1:{}", serve.port);
    for path in ["/healthz", "/readyz"] {
        let url = format!("{base}{path}");
        assert_eq!(
            healthcheck(&["--url", &url], None),
            (Some(0), String::new())
        );
    }
    // No `--url`: `/healthz` on the port of `DSFILES_LISTEN`, as the image's HEALTHCHECK runs it.
    let listen = format!("0.0.0.0:{}", serve.port);
    assert_eq!(healthcheck(&[], Some(&listen)), (Some(0), String::new()));
    let (code, err) = healthcheck(&["--url", &format!("{base}/no-such-route")], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("it answered 404"), "{err}");
}

/// One connection answered with `answer` (or closed at once when empty), in a thread.
fn scripted(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0; 1024];
        let n = stream.read(&mut request).unwrap();
        stream.write_all(answer.as_bytes()).unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    (url, thread)
}

#[test]
fn anything_but_a_2xx_is_unhealthy_and_says_why() {
    for (answer, expected) in [
        (
            "HTTP/1.1 503 Service Unavailable\r\n\r\n",
            "it answered 503",
        ),
        ("", "no answer"),
        ("garbage\r\n", "no answer"),
    ] {
        let (url, server) = scripted(answer);
        let (code, err) = healthcheck(&["--url", &url], None);
        assert_eq!(code, Some(1), "{answer:?}: {err}");
        assert!(err.contains(&format!("`{url}` is not healthy")), "{err}");
        assert!(err.contains(expected), "{answer:?}: {err}");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
    }
}

#[test]
fn nothing_listening_or_silence_is_unhealthy() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let (code, err) = healthcheck(&["--url", &url], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no answer"), "{err}");

    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let (code, err) = healthcheck(&["--url", &url, "--timeout", "1"], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no answer within 1s"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, err) = healthcheck(&["--url", "https://127.0.0.1/healthz"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plain `http://HOST…` URL"), "{err}");
    let (code, err) = healthcheck(&[], Some("not-an-address"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`DSFILES_LISTEN` is `not-an-address`"),
        "{err}"
    );
}
