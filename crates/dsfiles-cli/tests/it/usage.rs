//! Usage and configuration errors: exit 2, one line, no panic, nothing on stdout.

use crate::{dsfiles, stderr};

#[track_caller]
fn check(args: &[&str], expected_in_stderr: &[&str]) {
    let output = dsfiles().args(args).output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    assert!(output.stdout.is_empty(), "{args:?} wrote to stdout");
    assert!(!err.contains("panicked"), "{err}");
    for expected in expected_in_stderr {
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in: {err}"
        );
    }
}

#[test]
fn missing_token_names_both_ways_to_give_it() {
    check(
        &["list", "--demarche", "1"],
        &["DS_API_TOKEN", "--token-file"],
    );
    let err = stderr(
        &dsfiles()
            .args(["list", "--demarche", "1"])
            .output()
            .unwrap(),
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unreadable_token_file() {
    check(
        &[
            "list",
            "--demarche",
            "1",
            "--token-file",
            "/nonexistent/token",
        ],
        &["/nonexistent/token"],
    );
}

#[test]
fn bad_arguments() {
    check(&["list"], &["--demarche"]);
    check(&["list", "--demarche", "x"], &["invalid value"]);
    check(&["list", "--demarche", "1", "--format", "xml"], &["jsonl"]);
    check(
        &["list", "--demarche", "1", "--since", "last week"],
        &["YYYY-MM-DD"],
    );
    check(&["sync", "--demarche", "1"], &["--dest"]);
    check(
        &[
            "sync",
            "--demarche",
            "1",
            "--dest",
            "d",
            "--since",
            "full",
            "--full",
        ],
        &["--full"],
    );
    check(
        &[
            "sync",
            "--demarche",
            "1",
            "--dest",
            "d",
            "--dest-option",
            "novalue",
        ],
        &["KEY=VALUE"],
    );
    check(
        &["sync", "--demarche", "1", "--dest", "d", "--jobs", "0"],
        &["--jobs"],
    );
    check(&["frobnicate"], &["unrecognized subcommand"]);
}

#[test]
fn bad_layout_and_destination_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    let with_token = |args: &[&str]| {
        let output = dsfiles()
            .env("DS_API_TOKEN", "t0ken")
            .args(args)
            .output()
            .unwrap();
        (output.status.code(), stderr(&output))
    };
    let (code, err) = with_token(&[
        "sync",
        "--demarche",
        "1",
        "--dest",
        dest,
        "--layout",
        "{dossier}/{nope}",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("{nope}") && err.lines().count() == 1, "{err}");

    for (layout, named) in [
        ("{deposited:%Q}/{filename}", "`%Q` is not a strftime format"),
        (
            "{champ:}/{filename}",
            "`{champ:LABEL}` needs the champ's label",
        ),
    ] {
        let args = [
            "sync",
            "--demarche",
            "1",
            "--dest",
            dest,
            "--layout",
            layout,
        ];
        let (code, err) = with_token(&args);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(named) && err.lines().count() == 1, "{err}");
    }

    let data = ["--data-layout", "{demarche}/dossier.json"];
    let (code, err) =
        with_token(&[&["sync", "--demarche", "1", "--dest", dest][..], &data].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`--data-layout`") && err.contains("{dossier}"),
        "{err}"
    );

    let (code, err) = with_token(&["sync", "--demarche", "1", "--dest", "ftp://host/x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("ftp"), "{err}");
}

#[test]
fn invalid_rust_log_is_a_usage_error() {
    let output = dsfiles()
        .env("RUST_LOG", "dsfiles=loud")
        .args(["verify", "--dest", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("RUST_LOG"));
}

#[test]
fn bad_allowed_file_hosts_are_named() {
    let sync = [
        "sync",
        "--demarche",
        "1",
        "--dest",
        "d",
        "--allow-file-host",
    ];
    for (bad, named) in [
        ("http://files.example/", "`http://files.example/`"),
        ("h:0", "`0` is not a port"),
        ("[::1", "`[::1`"),
    ] {
        let args: Vec<&str> = sync.iter().copied().chain([bad]).collect();
        check(&args, &[named]);
    }
    // The environment variable, comma-separated, is checked the same way.
    let output = dsfiles()
        .args(["sync", "--demarche", "1", "--dest", "d"])
        .env("DSFILES_ALLOW_FILE_HOSTS", "files.example,10.0.0.1:x")
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("`10.0.0.1:x`"), "{err}");
}
