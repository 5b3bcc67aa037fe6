//! Timed runs through GNU time (`/usr/bin/time -f '%e %M %U %S'`: wall seconds, peak RSS in KiB,
//! user and system CPU seconds of the measured process), and the statistics of several rounds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// One measured command.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub wall_secs: f64,
    pub peak_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu_secs: f64,
}

impl Sample {
    /// Two commands run one after the other: wall times add, peak RSS is the larger.
    pub fn then(&self, next: &Sample) -> Sample {
        Sample {
            wall_secs: self.wall_secs + next.wall_secs,
            peak_rss_kib: self.peak_rss_kib.max(next.peak_rss_kib),
            cpu_secs: self.cpu_secs + next.cpu_secs,
        }
    }
}

/// Parses what `/usr/bin/time -f '%e %M %U %S' -o FILE` wrote: the last line is
/// `SECONDS KIB USER SYSTEM` (a line `Command exited with non-zero status N` may come first).
pub fn parse_time_output(text: &str) -> anyhow::Result<Sample> {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sample = match fields.as_slice() {
        [wall, rss, user, system] => (|| {
            Some(Sample {
                wall_secs: wall.parse().ok()?,
                peak_rss_kib: rss.parse().ok()?,
                cpu_secs: user.parse::<f64>().ok()? + system.parse::<f64>().ok()?,
            })
        })(),
        _ => None,
    };
    sample.with_context(|| format!("unexpected GNU time output: `{}`", text.trim()))
}

/// A command to measure: program, arguments, working directory, extra environment.
#[derive(Clone, Debug, Default)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: impl Into<String>, args: &[&str]) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Cmd::default()
        }
    }

    /// The command as a shell line, for the report (environment values of secrets masked).
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        if let Some(cwd) = &self.cwd {
            parts.push(format!("cd {} &&", shell_quote(&cwd.display().to_string())));
        }
        for (key, value) in &self.env {
            let value = if key.contains("TOKEN") || key.contains("SECRET") {
                "…".to_owned()
            } else {
                shell_quote(value)
            };
            parts.push(format!("{key}={value}"));
        }
        parts.push(shell_quote(&self.program));
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` under GNU time; stdout and stderr go to `log`. Fails when the command fails.
pub fn timed(cmd: &Cmd, log: &Path) -> anyhow::Result<Sample> {
    let time_file = log.with_extension("time");
    let out =
        fs::File::create(log).with_context(|| format!("cannot create `{}`", log.display()))?;
    let err = out.try_clone()?;
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%e %M %U %S", "-o"])
        .arg(&time_file)
        .arg(&cmd.program)
        .args(&cmd.args);
    if let Some(cwd) = &cmd.cwd {
        command.current_dir(cwd);
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    let status = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("cannot run `{}`", cmd.program))?;
    if !status.success() {
        let tail = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "`{}` failed ({status}); last lines of `{}`:\n{}",
            cmd.display(),
            log.display(),
            tail.join("\n")
        );
    }
    let text = fs::read_to_string(&time_file)
        .with_context(|| format!("cannot read `{}`", time_file.display()))?;
    parse_time_output(&text)
}

/// Median, min and max of several rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(values: &[f64]) -> Option<Stats> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_time_output_is_parsed() {
        assert_eq!(
            parse_time_output("1.52 23456 1.25 0.50\n").unwrap(),
            Sample {
                wall_secs: 1.52,
                peak_rss_kib: 23456,
                cpu_secs: 1.75
            }
        );
        assert_eq!(
            parse_time_output("Command exited with non-zero status 1\n0.01 1200 0.00 0.01\n")
                .unwrap(),
            Sample {
                wall_secs: 0.01,
                peak_rss_kib: 1200,
                cpu_secs: 0.01
            }
        );
        assert!(parse_time_output("").is_err());
        assert!(parse_time_output("fast 12 0 0").is_err());
        assert!(parse_time_output("1.52 23456").is_err());
        assert!(parse_time_output("1.52 23456 1 1 1").is_err());
    }

    #[test]
    fn median_min_max() {
        assert_eq!(
            stats(&[3.0, 1.0, 2.0]),
            Some(Stats {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(
            stats(&[4.0, 1.0]),
            Some(Stats {
                median: 2.5,
                min: 1.0,
                max: 4.0
            })
        );
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn sequences_add_wall_time_and_keep_the_larger_peak() {
        let a = Sample {
            wall_secs: 1.0,
            peak_rss_kib: 10,
            cpu_secs: 0.75,
        };
        let b = Sample {
            wall_secs: 0.5,
            peak_rss_kib: 30,
            cpu_secs: 0.5,
        };
        assert_eq!(
            a.then(&b),
            Sample {
                wall_secs: 1.5,
                peak_rss_kib: 30,
                cpu_secs: 1.25
            }
        );
    }

    #[test]
    fn commands_display_as_shell_lines_without_secrets() {
        let mut cmd = Cmd::new("curl", &["-Z", "--parallel-max", "16", "-K", "a b.cfg"]);
        cmd.env = vec![
            ("DS_API_TOKEN".into(), "s3cret".into()),
            ("DS_API_URL".into(), "http://h/".into()),
        ];
        cmd.cwd = Some(PathBuf::from("/tmp/x"));
        let line = cmd.display();
        assert_eq!(
            line,
            "cd /tmp/x && DS_API_TOKEN=… DS_API_URL=http://h/ curl -Z --parallel-max 16 -K 'a b.cfg'"
        );
        assert!(!line.contains("s3cret"));
    }
}
