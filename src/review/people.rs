//! People who work the review queue, their roles, and their bearer tokens (kept as SHA-256).

use crate::settings::PersonSettings;

/// A person who may act on review cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their name, recorded with their actions.
    pub name: String,
    /// Their roles.
    pub roles: Vec<String>,
}

impl Person {
    /// Whether they may resolve a case that needs `required_role`. A supervisor also has an
    /// agent's authority.
    pub fn may_resolve(&self, required_role: &str) -> bool {
        self.roles.iter().any(|r| r == required_role)
            || (required_role == "agent" && self.roles.iter().any(|r| r == "supervisor"))
    }
}

/// The configured people.
#[derive(Debug, Clone, Default)]
pub struct People {
    people: Vec<(String, Person)>,
}

impl People {
    /// The people in the configuration.
    pub fn from_settings(settings: &[PersonSettings]) -> Self {
        let people = settings
            .iter()
            .map(|p| {
                let person = Person {
                    name: p.name.clone(),
                    roles: p.roles.clone(),
                };
                (p.token_sha256.to_ascii_lowercase(), person)
            })
            .collect();
        Self { people }
    }

    /// The person a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<&Person> {
        let digest = hash_token(token);
        self.people
            .iter()
            .find(|(hash, _)| constant_time_eq(hash.as_bytes(), digest.as_bytes()))
            .map(|(_, person)| person)
    }

    /// The person with this name.
    pub fn named(&self, name: &str) -> Option<&Person> {
        self.people.iter().map(|(_, p)| p).find(|p| p.name == name)
    }
}

/// SHA-256 of a token, lower-case hex, as configured in `review.people.token_sha256`.
pub fn hash_token(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_hash_and_supervisors_cover_agents() {
        let people = People::from_settings(&[PersonSettings {
            name: "Jo".into(),
            roles: vec!["supervisor".into()],
            token_sha256: hash_token("s3cret"),
        }]);
        let jo = people.authenticate("s3cret").unwrap();
        assert!(people.authenticate("wrong").is_none());
        assert!(jo.may_resolve("supervisor") && jo.may_resolve("agent"));
        assert!(!jo.may_resolve("finance"));
    }
}
