//! User info: what a live token may tell about its user, by scope. The data is the optional
//! profile of the code record, carried into the token record by the exchange.

use serde::{Deserialize, Serialize};

/// The scope that shows `username`, `name` and `avatar`.
pub const BASIC: &str = "user:basic";
/// The scope that shows `email` and `mobile`.
pub const CONTRACT: &str = "user:contract";

/// The optional profile fields of the code-record contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
}

/// The answer of the user info endpoint. A field the scopes do not allow is absent, and so is
/// one they allow but the record lacks (OpenID Connect Core §5.3.2: not `null`, on which
/// clients that map a field to a user attribute fail). `sub` (the token's, the account id) is
/// there for OpenID-style clients, which refuse an answer without it; `id` is the same, our own
/// name.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct UserInfo<'a> {
    pub sub: &'a str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<&'a str>,
}

/// The fields `scopes` allow, or `None` when they allow none of them.
pub fn disclose<'a>(
    account_id: &'a str,
    username: &'a str,
    profile: &'a Profile,
    scopes: &[String],
) -> Option<UserInfo<'a>> {
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    let (basic, contract) = (has(BASIC), has(CONTRACT));
    let when = |allowed: bool, field: &'a Option<String>| field.as_deref().filter(|_| allowed);
    (basic || contract).then(|| UserInfo {
        sub: account_id,
        id: account_id,
        username: basic.then_some(username),
        name: when(basic, &profile.name),
        avatar: when(basic, &profile.avatar),
        email: when(contract, &profile.email),
        mobile: when(contract, &profile.mobile),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn profile() -> Profile {
        Profile {
            name: Some("Zhang San".into()),
            avatar: None,
            email: Some("zs@example.com".into()),
            mobile: Some("13800000000".into()),
        }
    }

    fn shown(scopes: &[&str]) -> serde_json::Value {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let profile = profile();
        serde_json::to_value(disclose("8cne", "zhangs", &profile, &scopes)).unwrap()
    }

    #[test]
    fn each_scope_shows_its_own_fields_and_leaves_out_unknown_values() {
        let basic = json!({
            "sub": "8cne", "id": "8cne", "username": "zhangs", "name": "Zhang San"
        });
        let contract = json!({
            "sub": "8cne", "id": "8cne", "email": "zs@example.com", "mobile": "13800000000"
        });
        let both = json!({
            "sub": "8cne", "id": "8cne", "username": "zhangs", "name": "Zhang San",
            "email": "zs@example.com", "mobile": "13800000000"
        });
        assert_eq!(shown(&[BASIC]), basic);
        assert_eq!(shown(&[CONTRACT]), contract);
        assert_eq!(shown(&[CONTRACT, "other", BASIC]), both);
    }

    #[test]
    fn other_scopes_show_nothing() {
        assert_eq!(shown(&["openid", "user:basics"]), serde_json::Value::Null);
    }
}
