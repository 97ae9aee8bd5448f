//! `{placeholder}` templates. Each key allows a fixed set of placeholders; any other is an
//! error at load time, so a typo never reaches a shell as a literal `{envfile}`. `{{` and `}}`
//! are a literal brace (for shell `${VAR:-x}`, write `${{VAR:-x}}`).

use std::path::Path;

/// The placeholders of `command.start` and `command.stop`.
pub const COMMAND: &[&str] = &["release", "dir", "port", "env_file", "previous"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

impl Template {
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "unclosed `{{` at byte {i} in `{text}` (write `{{{{` for a literal brace)"
                        ));
                    };
                    let name = &rest[..end];
                    if !allowed.contains(&name) {
                        let list: Vec<String> =
                            allowed.iter().map(|a| format!("{{{a}}}")).collect();
                        return Err(format!(
                            "unknown placeholder `{{{name}}}` (this key allows {})",
                            if list.is_empty() {
                                "none".to_string()
                            } else {
                                list.join(", ")
                            }
                        ));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(name.to_string()));
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => return Err(format!("stray `}}` at byte {i} in `{text}` (write `}}}}`)")),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template {
            parts,
            source: text.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == name))
    }

    /// A relative path template made relative to `base`.
    pub fn relative_to(mut self, base: &Path) -> Template {
        let absolute = matches!(self.parts.first(), Some(Part::Text(t)) if t.starts_with('/'));
        if !absolute {
            let prefix = format!("{}/", base.display());
            self.parts.insert(0, Part::Text(prefix.clone()));
            self.source = format!("{prefix}{}", self.source);
        }
        self
    }

    /// Render with plain values (paths, URLs); a missing value renders empty.
    pub fn render_with(&self, value: &dyn Fn(&str) -> Option<String>) -> String {
        self.render(value, false)
    }

    /// Render for `sh -c`: every value is quoted for the shell where it needs it.
    pub fn render_shell(&self, value: &dyn Fn(&str) -> Option<String>) -> String {
        self.render(value, true)
    }

    fn render(&self, value: &dyn Fn(&str) -> Option<String>, shell: bool) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    let s = value(v).unwrap_or_default();
                    if shell {
                        out.push_str(&shell_quote(&s));
                    } else {
                        out.push_str(&s);
                    }
                }
            }
        }
        out
    }
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_and_unknown_ones_are_named() {
        let t = Template::parse("run {dir}/app --port {port} ${{X}}", COMMAND).unwrap();
        let s = t.render_shell(&|k| match k {
            "dir" => Some("/srv/my app".into()),
            "port" => Some("8080".into()),
            _ => None,
        });
        assert_eq!(s, "run '/srv/my app'/app --port 8080 ${X}");
        let e = Template::parse("run {dri}", COMMAND).unwrap_err();
        assert!(e.contains("`{dri}`") && e.contains("{dir}"), "{e}");
        assert!(Template::parse("run {dir", COMMAND).is_err());
        assert!(Template::parse("a } b", COMMAND).is_err());
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
