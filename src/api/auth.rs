//! `/v2/auth`: etcd 2.3's users, roles and auth switch (`etcdserver/api/v2http/client_auth.go`
//! and `etcdserver/auth`), and the checks every other handler asks for: guest access without
//! credentials, HTTP basic auth with the user's roles on a key (or a key prefix for recursive
//! requests), root for administration.
//!
//! Reads the replicated [`AuthState`] of the newest published store version; a change is one
//! [`AuthChange`] proposed through raft. Passwords are hashed before they are proposed and
//! checked with the shard's [`crate::auth::password::Verifier`]; neither they nor their hashes
//! are ever logged or returned.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{json_response, method_not_allowed, Api};
use crate::auth::password;
use crate::auth::state::{AuthChange, AuthState, KvPermissions, Role, User, GUEST, ROOT};
use crate::error::{Code, Error};
use crate::http::{Method, Request, Response};
use crate::store::Command;

/// What the `Authorization` header says.
enum Credentials {
    Absent,
    Malformed,
    Basic(String, String),
}

/// Go's `Request.BasicAuth`.
fn credentials(req: &Request) -> Credentials {
    let Some(value) = req.header("authorization") else {
        return Credentials::Absent;
    };
    let Some(encoded) = value
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .map(|_| &value[6..])
    else {
        return Credentials::Malformed;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return Credentials::Malformed;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Credentials::Malformed;
    };
    match text.split_once(':') {
        Some((user, password)) => Credentials::Basic(user.to_string(), password.to_string()),
        None => Credentials::Malformed,
    }
}

fn is_write(method: &Method) -> bool {
    !matches!(method, Method::Get | Method::Head)
}

impl Api {
    fn auth_state(&self) -> AuthState {
        self.shard.view().auth().clone()
    }

    fn auth_enabled(&self) -> bool {
        self.shard.view().auth().enabled
    }

    /// The user named in valid credentials, when their password is right.
    async fn authenticated(&self, user: &str, password: &str) -> Option<User> {
        let found = self.shard.view().auth().user(user).cloned()?;
        self.auth_verifier
            .check(&found, password)
            .await
            .then_some(found)
    }

    /// etcd's `hasKeyPrefixAccess`: may this request touch `key` (recursively)?
    pub(crate) async fn key_access(&self, req: &Request, key: &str, recursive: bool) -> bool {
        self.key_access_as(req, key, recursive, is_write(&req.method))
            .await
    }

    /// [`Self::key_access`] for a read or a write (`write`) whatever the request's method.
    pub(crate) async fn key_access_as(
        &self,
        req: &Request,
        key: &str,
        recursive: bool,
        write: bool,
    ) -> bool {
        if !self.auth_enabled() {
            return true;
        }
        match credentials(req) {
            Credentials::Absent => self
                .shard
                .view()
                .auth()
                .role(GUEST)
                .is_some_and(|r| r.has_key_access(key, write)),
            Credentials::Malformed => false,
            Credentials::Basic(user, password) => {
                let Some(user) = self.authenticated(&user, &password).await else {
                    return false;
                };
                let view = self.shard.view();
                let state = view.auth();
                user.roles.iter().filter_map(|r| state.role(r)).any(|role| {
                    if recursive {
                        role.has_recursive_access(key, write)
                    } else {
                        role.has_key_access(key, write)
                    }
                })
            }
        }
    }

    /// etcd's `hasRootAccess`.
    pub(crate) async fn root_access(&self, req: &Request) -> bool {
        if !self.auth_enabled() {
            return true;
        }
        let Credentials::Basic(user, password) = credentials(req) else {
            return false;
        };
        match self.authenticated(&user, &password).await {
            Some(u) => u.name == ROOT || u.roles.iter().any(|r| r == ROOT),
            None => false,
        }
    }

    /// etcd's `hasWriteRootAccess`: reads are free, changes need root.
    pub(crate) async fn write_root_access(&self, req: &Request) -> bool {
        !is_write(&req.method) || self.root_access(req).await
    }

    /// Proposes one auth change; the store's precondition failure comes back as its error.
    async fn propose_auth(&self, change: AuthChange) -> Result<(), Error> {
        let outcome = self.shard.propose(&Command::Auth(change)).await?;
        outcome.result.map(|_| ())
    }
}

/// etcd's `writeNoAuth`: 401 `{"message":"Insufficient credentials"}`.
pub(crate) fn no_auth() -> Response {
    message(401, "Insufficient credentials")
}

/// etcd's `writeKeyNoAuth`: the v2 error 110 for the keys API.
pub(crate) fn key_no_auth() -> Response {
    super::error_response(&Error::new(
        Code::Unauthorized,
        "Insufficient credentials",
        0,
    ))
}

/// `{"message":"…"}` as etcd's `httptypes.HTTPError` writes it.
fn message(status: u16, text: &str) -> Response {
    let body = serde_json::json!({ "message": text }).to_string();
    json_response(status, body.into_bytes())
}

fn auth_error(status: u16, text: String) -> Response {
    message(status, &format!("auth: {text}"))
}

/// A JSON body with Go's `json.Encoder` newline.
fn encoded<T: Serialize>(status: u16, value: &T) -> Response {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    json_response(status, body)
}

fn store_error(e: &Error) -> Response {
    message(500, &e.to_string())
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Debug)]
struct RwJson {
    #[serde(default)]
    read: Option<Vec<String>>,
    #[serde(default)]
    write: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Debug)]
struct PermissionsJson {
    #[serde(default)]
    kv: RwJson,
}

impl PermissionsJson {
    fn is_empty(&self) -> bool {
        self.kv.read.as_ref().is_none_or(|v| v.is_empty())
            && self.kv.write.as_ref().is_none_or(|v| v.is_empty())
    }
}

#[derive(Serialize, Deserialize, Default, Debug)]
struct RoleJson {
    role: String,
    #[serde(default)]
    permissions: PermissionsJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant: Option<PermissionsJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoke: Option<PermissionsJson>,
}

fn role_json(r: &Role) -> RoleJson {
    RoleJson {
        role: r.name.clone(),
        permissions: PermissionsJson {
            kv: RwJson {
                read: Some(r.kv.read.clone()),
                write: Some(r.kv.write.clone()),
            },
        },
        grant: None,
        revoke: None,
    }
}

#[derive(Deserialize, Default)]
struct UserIn {
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    grant: Option<Vec<String>>,
    #[serde(default)]
    revoke: Option<Vec<String>>,
}

#[derive(Serialize)]
struct UserOut {
    user: String,
    roles: Option<Vec<String>>,
}

#[derive(Serialize)]
struct UserWithRoles {
    user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<RoleJson>,
}

/// The user as etcd's `GetUser` shows it: root always has the root role.
fn with_root_role(mut u: User) -> User {
    if u.name == ROOT && !u.roles.iter().any(|r| r == ROOT) {
        u.roles.push(ROOT.into());
        u.roles.sort();
    }
    u
}

/// Routes `/v2/auth/<sub>`.
pub async fn handle(api: &Api, req: &Request, sub: &str) -> Response {
    let mut resp = route(api, req, sub).await;
    if resp.status != 405 {
        resp.headers.push(api.cluster_id_header());
    }
    resp
}

async fn route(api: &Api, req: &Request, sub: &str) -> Response {
    // Go's path.Clean, then split: "/users/name" has three pieces.
    let clean = crate::client::clean_path(&format!("/{sub}"));
    let pieces: Vec<&str> = clean.split('/').collect();
    match (pieces.get(1).copied(), pieces.len()) {
        (Some("enable"), 2) if sub == "enable" => enable(api, req).await,
        (Some("users"), 2) => users(api, req).await,
        (Some("roles"), 2) => roles(api, req).await,
        (Some("users"), 3) if sub.starts_with("users/") => user(api, req, pieces[2]).await,
        (Some("roles"), 3) if sub.starts_with("roles/") => role(api, req, pieces[2]).await,
        (Some("users" | "roles"), _) if sub.contains('/') => message(400, "Invalid path"),
        _ => super::not_found(),
    }
}

async fn enable(api: &Api, req: &Request) -> Response {
    if !matches!(req.method, Method::Get | Method::Put | Method::Delete) {
        return method_not_allowed("GET,PUT,DELETE");
    }
    if !api.write_root_access(req).await {
        return no_auth();
    }
    let state = api.auth_state();
    match req.method {
        Method::Get => encoded(200, &serde_json::json!({ "enabled": state.enabled })),
        Method::Put => {
            if state.enabled {
                return auth_error(409, "already enabled".into());
            }
            if state.user(ROOT).is_none() {
                return auth_error(409, "No root user available, please create one".into());
            }
            if state.role(GUEST).is_none() {
                let guest = Role {
                    name: GUEST.into(),
                    kv: KvPermissions {
                        read: vec!["/*".into()],
                        write: vec!["/*".into()],
                    },
                };
                if let Err(e) = api.propose_auth(AuthChange::CreateRole(guest)).await {
                    return store_error(&e);
                }
            }
            match api.propose_auth(AuthChange::SetEnabled(true)).await {
                Ok(()) => json_response(200, Vec::new()),
                Err(e) => store_error(&e),
            }
        }
        _ => {
            if !state.enabled {
                return auth_error(409, "already disabled".into());
            }
            match api.propose_auth(AuthChange::SetEnabled(false)).await {
                Ok(()) => json_response(200, Vec::new()),
                Err(e) => store_error(&e),
            }
        }
    }
}

async fn users(api: &Api, req: &Request) -> Response {
    if req.method != Method::Get {
        return method_not_allowed("GET");
    }
    if !api.root_access(req).await {
        return no_auth();
    }
    let state = api.auth_state();
    let users: Vec<UserWithRoles> = state
        .users()
        .cloned()
        .map(with_root_role)
        .map(|u| UserWithRoles {
            roles: u
                .roles
                .iter()
                .filter_map(|r| state.role(r))
                .map(|r| role_json(&r))
                .collect(),
            user: u.name,
        })
        .collect();
    let users = (!users.is_empty()).then_some(users);
    encoded(200, &serde_json::json!({ "users": users }))
}

async fn roles(api: &Api, req: &Request) -> Response {
    if req.method != Method::Get {
        return method_not_allowed("GET");
    }
    if !api.root_access(req).await {
        return no_auth();
    }
    let state = api.auth_state();
    let mut all: Vec<Role> = state.roles().cloned().collect();
    all.push(Role::root());
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let roles: Vec<RoleJson> = all.iter().map(role_json).collect();
    encoded(200, &serde_json::json!({ "roles": roles }))
}

async fn user(api: &Api, req: &Request, name: &str) -> Response {
    if !matches!(req.method, Method::Get | Method::Put | Method::Delete) {
        return method_not_allowed("GET,PUT,DELETE");
    }
    if !api.root_access(req).await {
        return no_auth();
    }
    let state = api.auth_state();
    match req.method {
        Method::Get => {
            let Some(u) = state.user(name).cloned().map(with_root_role) else {
                return auth_error(404, format!("User {name} does not exist."));
            };
            let mut roles = Vec::new();
            for r in &u.roles {
                match state.role(r) {
                    Some(role) => roles.push(role_json(&role)),
                    None => return auth_error(404, format!("Role {r} does not exist.")),
                }
            }
            encoded(
                200,
                &UserWithRoles {
                    user: u.name,
                    roles,
                },
            )
        }
        Method::Put => put_user(api, &state, req, name).await,
        _ => {
            if state.enabled && name == ROOT {
                return auth_error(403, "Cannot delete root user while auth is enabled.".into());
            }
            match api.propose_auth(AuthChange::DeleteUser(name.into())).await {
                Ok(()) => json_response(200, Vec::new()),
                Err(e) if e.code == Code::KeyNotFound => {
                    auth_error(404, format!("User {name} does not exist"))
                }
                Err(e) => store_error(&e),
            }
        }
    }
}

async fn put_user(api: &Api, state: &AuthState, req: &Request, name: &str) -> Response {
    let Ok(input) = serde_json::from_slice::<UserIn>(&req.body) else {
        return message(400, "Invalid JSON in request body.");
    };
    if input.user != name {
        return message(400, "User JSON name does not match the name in the URL");
    }
    let grant = input.grant.clone().unwrap_or_default();
    let revoke = input.revoke.clone().unwrap_or_default();
    let roles = input.roles.clone().unwrap_or_default();
    let existing = state.user(name).cloned();
    if grant.is_empty() && revoke.is_empty() {
        // etcd: with roles, always a creation (answered 200); with a password alone, create
        // (201) or update.
        if !roles.is_empty() {
            return create_user(api, input, 200).await;
        }
        if let Some(old) = existing {
            return update_user(api, old, &input, &grant, &revoke).await;
        }
        return create_user(api, input, 201).await;
    }
    if !roles.is_empty() {
        return message(400, "User JSON contains both roles and grant/revoke");
    }
    let Some(old) = existing else {
        return auth_error(404, format!("User {name} does not exist."));
    };
    update_user(api, old, &input, &grant, &revoke).await
}

async fn create_user(api: &Api, input: UserIn, status: u16) -> Response {
    if input.password.is_empty() {
        return auth_error(
            400,
            format!("Cannot create user {} with an empty password", input.user),
        );
    }
    let hash = match password::hash(input.password).await {
        Ok(h) => h,
        Err(e) => return message(500, &e),
    };
    let mut roles = input.roles.clone();
    if input.user == ROOT {
        let r = roles.get_or_insert_with(Vec::new);
        if !r.iter().any(|x| x == ROOT) {
            r.push(ROOT.into());
        }
    }
    let user = User {
        name: input.user.clone(),
        password_hash: hash,
        roles: roles.clone().unwrap_or_default(),
    };
    match api.propose_auth(AuthChange::CreateUser(user)).await {
        Ok(()) => encoded(
            status,
            &UserOut {
                user: input.user,
                roles,
            },
        ),
        Err(e) if e.code == Code::NodeExist => {
            auth_error(409, format!("User {} already exists.", input.user))
        }
        Err(e) => store_error(&e),
    }
}

/// etcd's `User.merge`, then the update (refused when nothing changes).
async fn update_user(
    api: &Api,
    old: User,
    input: &UserIn,
    grant: &[String],
    revoke: &[String],
) -> Response {
    let mut roles: Vec<String> = old.roles.clone();
    for g in grant {
        if roles.contains(g) {
            return auth_error(
                409,
                format!("Granting duplicate role {g} for user {}", input.user),
            );
        }
        roles.push(g.clone());
    }
    for r in revoke {
        let Some(at) = roles.iter().position(|x| x == r) else {
            return auth_error(
                409,
                format!("Revoking ungranted role {r} for user {}", input.user),
            );
        };
        roles.remove(at);
    }
    roles.sort();
    let password_hash = if input.password.is_empty() {
        old.password_hash.clone()
    } else {
        match password::hash(input.password.clone()).await {
            Ok(h) => h,
            Err(e) => return message(500, &e),
        }
    };
    let new = User {
        name: old.name.clone(),
        password_hash,
        roles,
    };
    if new == old {
        return auth_error(
            400,
            "User not updated. Use grant/revoke/password to update the user.".into(),
        );
    }
    let out = UserOut {
        user: new.name.clone(),
        roles: Some(new.roles.clone()),
    };
    match api.propose_auth(AuthChange::UpdateUser(new)).await {
        Ok(()) => encoded(200, &out),
        Err(e) if e.code == Code::KeyNotFound => {
            auth_error(404, format!("User {} doesn't exist.", input.user))
        }
        Err(e) => store_error(&e),
    }
}

async fn role(api: &Api, req: &Request, name: &str) -> Response {
    if !matches!(req.method, Method::Get | Method::Put | Method::Delete) {
        return method_not_allowed("GET,PUT,DELETE");
    }
    if !api.root_access(req).await {
        return no_auth();
    }
    let state = api.auth_state();
    match req.method {
        Method::Get => match state.role(name) {
            Some(r) => encoded(200, &role_json(&r)),
            None => auth_error(404, format!("Role {name} does not exist.")),
        },
        Method::Put => put_role(api, &state, req, name).await,
        _ => {
            if name == ROOT {
                return auth_error(403, format!("Cannot modify role {name}: is root role."));
            }
            match api.propose_auth(AuthChange::DeleteRole(name.into())).await {
                Ok(()) => json_response(200, Vec::new()),
                Err(e) if e.code == Code::KeyNotFound => {
                    auth_error(404, format!("Role {name} doesn't exist."))
                }
                Err(e) => store_error(&e),
            }
        }
    }
}

async fn put_role(api: &Api, state: &AuthState, req: &Request, name: &str) -> Response {
    let Ok(input) = serde_json::from_slice::<RoleJson>(&req.body) else {
        return message(400, "Invalid JSON in request body.");
    };
    if input.role != name {
        return message(400, "Role JSON name does not match the name in the URL");
    }
    let grant = input.grant.clone().unwrap_or_default();
    let revoke = input.revoke.clone().unwrap_or_default();
    if name == ROOT {
        return auth_error(403, format!("Cannot modify role {name}: is root role."));
    }
    if grant.is_empty() && revoke.is_empty() {
        let role = Role {
            name: name.into(),
            kv: KvPermissions {
                read: input.permissions.kv.read.clone().unwrap_or_default(),
                write: input.permissions.kv.write.clone().unwrap_or_default(),
            },
        };
        return match api.propose_auth(AuthChange::CreateRole(role)).await {
            Ok(()) => encoded(201, &input),
            Err(e) if e.code == Code::NodeExist => {
                auth_error(409, format!("Role {name} already exists."))
            }
            Err(e) => store_error(&e),
        };
    }
    if !input.permissions.is_empty() {
        return message(400, "Role JSON contains both permissions and grant/revoke");
    }
    let Some(old) = state.stored_role(name).cloned() else {
        return auth_error(404, format!("Role {name} does not exist."));
    };
    let mut kv = old.kv.clone();
    for (list, added, what) in [
        (&mut kv.read, &grant.kv.read, "read"),
        (&mut kv.write, &grant.kv.write, "write"),
    ] {
        for p in added.iter().flatten() {
            if list.contains(p) {
                return auth_error(409, format!("Granting duplicate {what} permission {p}"));
            }
            list.push(p.clone());
        }
    }
    for (list, removed) in [
        (&mut kv.read, &revoke.kv.read),
        (&mut kv.write, &revoke.kv.write),
    ] {
        list.retain(|p| !removed.iter().flatten().any(|r| r == p));
    }
    kv.read.sort();
    kv.read.dedup();
    kv.write.sort();
    kv.write.dedup();
    let mut old_sorted = old.kv.clone();
    old_sorted.read.sort();
    old_sorted.write.sort();
    if kv == old_sorted {
        return auth_error(
            400,
            "Role not updated. Use grant/revoke to update the role.".into(),
        );
    }
    let new = Role {
        name: name.into(),
        kv,
    };
    let out = role_json(&new);
    match api.propose_auth(AuthChange::UpdateRole(new)).await {
        Ok(()) => encoded(200, &out),
        Err(e) if e.code == Code::KeyNotFound => {
            auth_error(404, format!("Role {name} doesn't exist."))
        }
        Err(e) => store_error(&e),
    }
}
