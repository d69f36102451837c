//! A small, strict argument parser: known options only, values required.

use crate::Fail;

/// Parsed arguments.
pub struct Args {
    values: Vec<(String, String)>,
    flags: Vec<String>,
    /// Arguments that are not options.
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `argv` given the options that take a value and the boolean flags.
    /// `--opt=value` and `--opt value` are both accepted; `-` is positional.
    pub fn parse(argv: &[String], valued: &[&str], flags: &[&str]) -> Result<Args, Fail> {
        let mut a = Args { values: Vec::new(), flags: Vec::new(), positional: Vec::new() };
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.positional.extend(it.by_ref().cloned());
                break;
            }
            if arg.starts_with('-') && arg != "-" {
                let (name, inline) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (arg.as_str(), None),
                };
                if valued.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => {
                            it.next().cloned().ok_or_else(|| Fail::input(format!("usage: {name} needs a value")))?
                        }
                    };
                    if a.values.iter().any(|(n, _)| n == name) {
                        return Err(Fail::input(format!("usage: {name} given twice")));
                    }
                    a.values.push((name.to_string(), v));
                } else if flags.contains(&name) && inline.is_none() {
                    a.flags.push(name.to_string());
                } else {
                    return Err(Fail::input(format!("usage: unknown option `{arg}`")));
                }
            } else {
                a.positional.push(arg.clone());
            }
        }
        Ok(a)
    }

    /// The value of an option.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether a flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}
