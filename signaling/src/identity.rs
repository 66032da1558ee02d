//! Identity: who is acting. A leaf module (it imports nothing of the crate): the staff
//! [`Role`] and the [`Principal`] a bearer token stands for. `auth` resolves tokens to
//! principals; `db` maps roles to text; every other layer takes a principal as input.

/// Staff role. (A kiosk is not a user; its role string on the wire is `kiosk`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Town window approver (wire/demo-link role name `window` for the page, `approver` in `Me`).
    Approver,
    /// Window chief: second sign-off.
    Chief,
    /// Town dispatcher: group calls into villages.
    Dispatcher,
    /// County-wide supervisor.
    Supervisor,
    /// County-wide administrator.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Approver, Role::Chief, Role::Dispatcher, Role::Supervisor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Approver => "approver",
            Role::Chief => "chief",
            Role::Dispatcher => "dispatcher",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Supervisor and admin act county-wide (a supervisor may be limited to one town).
    pub fn is_county_wide(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin)
    }
}

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A village service-room device.
    Kiosk { kiosk_id: i64, village_id: i64, town_id: i64, name: String },
    /// A staff member with a live session. `town_id` is `None` for county-wide roles (admins,
    /// county supervisors; a supervisor may be limited to a town), `window_id` is set for
    /// approvers (and chiefs tied to a window).
    Staff { user_id: i64, role: Role, town_id: Option<i64>, window_id: Option<i64>, name: String },
}

impl Principal {
    /// The town the principal acts in (`None`: county-wide).
    pub fn town_id(&self) -> Option<i64> {
        match self {
            Principal::Kiosk { town_id, .. } => Some(*town_id),
            Principal::Staff { town_id, .. } => *town_id,
        }
    }

    /// `kiosk`, or the staff role's name.
    pub fn role_str(&self) -> &'static str {
        match self {
            Principal::Kiosk { .. } => "kiosk",
            Principal::Staff { role, .. } => role.as_str(),
        }
    }

    /// Media participant label: `kiosk:ID` or `staff:ID`.
    pub fn label(&self) -> String {
        match self {
            Principal::Kiosk { kiosk_id, .. } => format!("kiosk:{kiosk_id}"),
            Principal::Staff { user_id, .. } => format!("staff:{user_id}"),
        }
    }

    /// Supervisor and admin: county-wide, no town.
    pub fn is_county_wide(&self) -> bool {
        matches!(self, Principal::Staff { role, town_id: None, .. } if role.is_county_wide())
    }

    /// The kiosk id or the user id.
    pub fn user_id(&self) -> i64 {
        match self {
            Principal::Kiosk { kiosk_id, .. } => *kiosk_id,
            Principal::Staff { user_id, .. } => *user_id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Principal::Kiosk { name, .. } | Principal::Staff { name, .. } => name,
        }
    }
}
