//! Query-string parsing with strict validation: unknown parameters and bad values
//! are answered 400 with the parameter's name, never ignored.

use std::collections::HashMap;

/// The decoded parameters of one request.
#[derive(Debug)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    /// Decodes `raw` and checks every name against `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Query, String> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                return Err(if allowed.is_empty() {
                    format!("unknown query parameter `{name}`: this route takes none")
                } else {
                    format!(
                        "unknown query parameter `{name}` (allowed: {})",
                        allowed.join(", ")
                    )
                });
            }
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(format!("query parameter `{name}` is given twice"));
            }
        }
        Ok(Query { params })
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// An optional non-negative integer parameter.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, String> {
        self.text(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    format!("query parameter `{name}` must be a non-negative integer, got `{v}`")
                })
            })
            .transpose()
    }

    /// True for `consistency=linearizable`; `default` or absence is false.
    pub fn linearizable(&self) -> Result<bool, String> {
        match self.text("consistency") {
            None | Some("default") => Ok(false),
            Some("linearizable") => Ok(true),
            Some(other) => Err(format!(
                "query parameter `consistency` must be `default` or `linearizable`, got `{other}`"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decodes_and_rejects() {
        let q = Query::parse(
            Some("shardId=a%2Db&consistency=linearizable"),
            &["shardId", "consistency"],
        )
        .unwrap();
        assert_eq!(q.text("shardId"), Some("a-b"));
        assert!(q.linearizable().unwrap());
        assert!(Query::parse(Some("nope=1"), &["shardId"])
            .unwrap_err()
            .contains("nope"));
        assert!(Query::parse(Some("a=1&a=2"), &["a"])
            .unwrap_err()
            .contains("twice"));
        let q = Query::parse(Some("limit=-3"), &["limit"]).unwrap();
        assert!(q.u64("limit").unwrap_err().contains("limit"));
        let q = Query::parse(Some("consistency=strong"), &["consistency"]).unwrap();
        assert!(q.linearizable().is_err());
        assert_eq!(Query::parse(None, &[]).unwrap().u64("x").unwrap(), None);
    }
}
