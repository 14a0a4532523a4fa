//! Who may do what: pure functions, no I/O.
//!
//! The model, kept deliberately small:
//! - Every user belongs to exactly one organisation (tenant) and has one role.
//! - `admin` may do everything inside its own organisation (users, channels, devices,
//!   keys, events, webhooks).
//! - An `admin` of the *system* organisation (the one `bootstrap_admin` creates) is the
//!   platform operator: it may additionally create organisations and manage users in
//!   any organisation (someone has to create a new tenant's first admin). It does not
//!   see other tenants' channels or keys through these rules.
//! - `broadcaster` manages channels, devices, stream keys and events of its own
//!   organisation, and watches them.
//! - `viewer` may only watch (obtain playback tokens for) its own organisation's
//!   channels. Public channels need no principal at all.
//!
//! A refusal on another organisation's resource is reported as *not found* by the
//! repositories (never "forbidden"), so ids cannot be probed across tenants.

use crate::error::ControlError;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages its organisation.
    Admin,
    /// Manages channels, devices, keys and events.
    Broadcaster,
    /// Watches.
    Viewer,
}

impl Role {
    /// The stored / API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Broadcaster => "broadcaster",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the stored / API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "broadcaster" => Some(Role::Broadcaster),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: String,
    /// The user's organisation.
    pub org_id: String,
    /// The user's role.
    pub role: Role,
    /// Whether `org_id` is the system organisation.
    pub system: bool,
}

/// Things a principal may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Create an organisation (system admins only).
    CreateOrg,
    /// Create, list, disable users.
    ManageUsers,
    /// List and read channels including private and unlisted ones.
    ReadChannels,
    /// Create, update, delete channels.
    ManageChannels,
    /// Devices and their stream keys.
    ManageDevices,
    /// Scheduled events.
    ManageEvents,
    /// Webhooks.
    ManageWebhooks,
    /// Obtain a playback token for a (private) channel.
    Watch,
}

/// Whether `p` may perform `action` on a resource owned by `resource_org`.
pub fn can(p: &Principal, action: Action, resource_org: &str) -> bool {
    let own = p.org_id == resource_org;
    match (p.role, action) {
        (Role::Admin, Action::CreateOrg) => p.system,
        (Role::Admin, Action::ManageUsers) => own || p.system,
        (Role::Admin, _) => own,
        (
            Role::Broadcaster,
            Action::ReadChannels
            | Action::ManageChannels
            | Action::ManageDevices
            | Action::ManageEvents
            | Action::Watch,
        ) => own,
        (Role::Viewer, Action::Watch) => own,
        _ => false,
    }
}

/// `can`, as the error a repository returns: another tenant's resource is `NotFound`
/// (its existence is not revealed), a refused action on one's own is `Forbidden`.
pub(crate) fn check(
    p: &Principal,
    action: Action,
    resource_org: &str,
    what: &'static str,
) -> Result<(), ControlError> {
    if can(p, action, resource_org) {
        Ok(())
    } else if p.org_id != resource_org {
        Err(ControlError::not_found(what))
    } else {
        Err(ControlError::Forbidden {
            role: p.role,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, org: &str, system: bool) -> Principal {
        Principal {
            user_id: "usr_1".into(),
            org_id: org.into(),
            role,
            system,
        }
    }

    const ALL: [Action; 8] = [
        Action::CreateOrg,
        Action::ManageUsers,
        Action::ReadChannels,
        Action::ManageChannels,
        Action::ManageDevices,
        Action::ManageEvents,
        Action::ManageWebhooks,
        Action::Watch,
    ];

    #[test]
    fn matrix() {
        let sys = p(Role::Admin, "sys", true);
        let admin = p(Role::Admin, "a", false);
        let bc = p(Role::Broadcaster, "a", false);
        let viewer = p(Role::Viewer, "a", false);
        for action in ALL {
            // Nobody but a system admin does anything in another org, and even it only
            // creates orgs and manages users there.
            for who in [&admin, &bc, &viewer] {
                assert!(!can(who, action, "b"), "{who:?} {action:?} in b");
            }
            assert_eq!(
                can(&sys, action, "b"),
                matches!(action, Action::CreateOrg | Action::ManageUsers),
                "{action:?}"
            );
            assert_eq!(
                can(&admin, action, "a"),
                action != Action::CreateOrg,
                "{action:?}"
            );
            assert_eq!(
                can(&bc, action, "a"),
                !matches!(
                    action,
                    Action::CreateOrg | Action::ManageUsers | Action::ManageWebhooks
                ),
                "{action:?}"
            );
            assert_eq!(
                can(&viewer, action, "a"),
                action == Action::Watch,
                "{action:?}"
            );
        }
    }

    #[test]
    fn other_org_is_not_found_own_org_is_forbidden() {
        let bc = p(Role::Broadcaster, "a", false);
        assert!(matches!(
            check(&bc, Action::ManageChannels, "b", "channel"),
            Err(ControlError::NotFound { what: "channel" })
        ));
        assert!(matches!(
            check(&bc, Action::ManageUsers, "a", "user"),
            Err(ControlError::Forbidden { .. })
        ));
        assert!(check(&bc, Action::ManageChannels, "a", "channel").is_ok());
    }
}
