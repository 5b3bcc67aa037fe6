//! `--help` of every command, as snapshots: the help is the first documentation operators read.

use crate::dsfiles;

fn help(args: &[&str]) -> String {
    let output = dsfiles().args(args).arg("--help").output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} --help failed: {output:?}"
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn top_level() {
    insta::assert_snapshot!(help(&[]));
}

#[test]
fn list() {
    insta::assert_snapshot!(help(&["list"]));
}

#[test]
fn sync() {
    insta::assert_snapshot!(help(&["sync"]));
}

#[test]
fn verify() {
    insta::assert_snapshot!(help(&["verify"]));
}

#[test]
fn index() {
    insta::assert_snapshot!(help(&["index"]));
}

#[test]
fn seda() {
    insta::assert_snapshot!(help(&["seda"]));
}

#[test]
fn demo() {
    insta::assert_snapshot!(help(&["demo"]));
}

#[test]
fn serve() {
    insta::assert_snapshot!(help(&["serve"]));
}

#[test]
fn healthcheck() {
    insta::assert_snapshot!(help(&["healthcheck"]));
}

#[test]
fn completions() {
    insta::assert_snapshot!(help(&["completions"]));
}

#[test]
fn man() {
    insta::assert_snapshot!(help(&["man"]));
}

#[test]
fn short_help_fits_a_screen() {
    let output = dsfiles().args(["sync", "-h"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.lines().all(|line| line.chars().count() <= 100),
        "{text}"
    );
}
