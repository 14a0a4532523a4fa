//! The command line of the load harnesses (`hls-load`, `put-get`, `rtmp-load`,
//! `srt-load`): flags read one at a time, each taking the next argument as its value
//! when it has one.

use std::{path::PathBuf, str::FromStr};

use anyhow::{Context, Result};

/// The node a harness starts unless `--starling` says otherwise (from the workspace root).
pub fn default_starling() -> PathBuf {
    PathBuf::from("target/release/starling")
}

/// This process's arguments, flag by flag:
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// let mut flags = starling_bench::args::Flags::from_env();
/// let (mut steps, mut seconds): (Vec<usize>, u64) = (vec![1, 20], 60);
/// while let Some(flag) = flags.next_flag() {
///     match flag.as_str() {
///         "--steps" => steps = flags.list()?,
///         "--seconds" => seconds = flags.parsed()?,
///         other => anyhow::bail!("unknown flag {other}"),
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Flags {
    it: std::iter::Skip<std::env::Args>,
    /// The flag last returned, for the error when its value is missing.
    flag: String,
}

impl Flags {
    /// The arguments after the program's name.
    pub fn from_env() -> Self {
        Self {
            it: std::env::args().skip(1),
            flag: String::new(),
        }
    }

    /// The next flag, if any.
    pub fn next_flag(&mut self) -> Option<String> {
        let flag = self.it.next()?;
        self.flag.clone_from(&flag);
        Some(flag)
    }

    /// The value of the flag last returned: the next argument.
    pub fn value(&mut self) -> Result<String> {
        let flag = &self.flag;
        self.it
            .next()
            .with_context(|| format!("{flag} needs a value"))
    }

    /// The value, parsed.
    pub fn parsed<T>(&mut self) -> Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        Ok(self.value()?.parse()?)
    }

    /// The value as a comma-separated list (`--steps 1,20`), each item trimmed and parsed.
    pub fn list<T>(&mut self) -> Result<Vec<T>>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        Ok(self
            .value()?
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()?)
    }
}
