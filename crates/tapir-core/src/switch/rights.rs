//! What the operator lets each application do: the lines it may open, the
//! privileges it may hold (`owner`, `monitor`) and its permissions beyond
//! call control (`make_call`, `forward`, `settings`). Every refusal is
//! `noprivilege` with a sentence naming the app and the missing right; the
//! checks come before any state changes, so a refused request changes
//! nothing.

use super::{App, Switch};
use crate::config::{AppConfig, AppPermission};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId, LineId};
use crate::types::Privilege;

fn privilege_name(p: Privilege) -> &'static str {
    match p {
        Privilege::Owner => "owner",
        Privilege::Monitor => "monitor",
    }
}

impl App {
    /// The app's model entry for its configuration.
    pub(crate) fn from_config(cfg: AppConfig) -> App {
        App {
            name: cfg.name,
            priority: cfg.priority,
            lines: cfg.lines,
            privileges: cfg.privileges,
            permissions: cfg.permissions,
        }
    }

    fn may_open(&self, first_address: &str) -> bool {
        self.lines.iter().any(|l| l == "*" || l == first_address)
    }
}

impl Switch {
    fn app_entry(&self, app: AppId) -> Result<&App, TapiError> {
        self.m.apps.get(&app).ok_or_else(|| {
            TapiError::new(
                ErrorCode::InvalParam,
                format!("{app} is not a registered application"),
            )
        })
    }

    /// `noprivilege` unless the app's configuration grants `permission`;
    /// `what` names the refused operation ("make calls").
    pub(crate) fn check_permission(
        &self,
        app: AppId,
        permission: AppPermission,
        what: &str,
    ) -> Result<(), TapiError> {
        let a = self.app_entry(app)?;
        if a.permissions.contains(&permission) {
            return Ok(());
        }
        fail(
            ErrorCode::NoPrivilege,
            format!(
                "application {} may not {what}: its configuration does not grant the permission '{}'",
                a.name,
                permission.as_str()
            ),
        )
    }

    /// `noprivilege` unless the app may hold `privilege` on a call; `what`
    /// says how it would come to hold it.
    pub(crate) fn check_privilege_cap(
        &self,
        app: AppId,
        privilege: Privilege,
        what: &str,
    ) -> Result<(), TapiError> {
        let a = self.app_entry(app)?;
        if a.privileges.contains(&privilege) {
            return Ok(());
        }
        fail(
            ErrorCode::NoPrivilege,
            format!(
                "application {} may not {what}: its configuration does not allow it the {} privilege (only: {})",
                a.name,
                privilege_name(privilege),
                a.privileges
                    .iter()
                    .map(|p| privilege_name(*p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }

    /// `lineOpen`'s rights: the line is one of the app's, and every
    /// privilege asked for is within its configured ones.
    pub(crate) fn check_open_rights(
        &self,
        app: AppId,
        line: LineId,
        privileges: &[Privilege],
    ) -> Result<(), TapiError> {
        let a = self.app_entry(app)?;
        let first = self
            .m
            .lines
            .get(&line)
            .and_then(|l| l.addresses.first())
            .map(|a| a.to_string())
            .unwrap_or_default();
        if !a.may_open(&first) {
            return fail(
                ErrorCode::NoPrivilege,
                format!("application {} may not open line {first}", a.name),
            );
        }
        for p in privileges {
            self.check_privilege_cap(app, *p, &format!("open lines as {}", privilege_name(*p)))?;
        }
        Ok(())
    }

    /// Whether `app` may be handed a monitor handle to `call` without
    /// asking (conference related calls): its configuration allows it a
    /// privilege (a monitor handle is the least one) and the line the call
    /// is on.
    pub(crate) fn may_watch(&self, app: AppId, call: CallId) -> bool {
        let Some(a) = self.m.apps.get(&app) else {
            return false;
        };
        !a.privileges.is_empty() && self.may_hold_on_line_of(a, call)
    }

    fn may_hold_on_line_of(&self, a: &App, call: CallId) -> bool {
        self.call(call)
            .and_then(|c| self.m.lines.get(&c.line))
            .and_then(|l| l.addresses.first())
            .is_some_and(|first| a.may_open(first))
    }

    /// After the operator changed an app's rights: close every line it has
    /// open that it may no longer open, or with a privilege it may no
    /// longer hold (`line.state` `closed`, as `lineClose`), and bring the
    /// handles it still holds within its rights: an owner handle without
    /// the owner privilege becomes a monitor handle (`call.state` with the
    /// new privilege, as `lineSetCallPrivilege`), and a handle it may not
    /// hold at all (no privilege left, or a call on a line it may no longer
    /// open) goes, as `lineDeallocateCall`. Returns the closed lines.
    pub(crate) fn enforce_rights(&mut self, app: AppId) -> Vec<LineId> {
        let Some(a) = self.m.apps.get(&app) else {
            return Vec::new();
        };
        let revoked: Vec<LineId> = self
            .m
            .lines
            .iter()
            .filter_map(|(id, l)| {
                let open = l.opens.iter().find(|o| o.app == app)?;
                let first = l
                    .addresses
                    .first()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let allowed = a.may_open(&first)
                    && (!open.owner || a.privileges.contains(&Privilege::Owner))
                    && (!open.monitor || a.privileges.contains(&Privilege::Monitor));
                (!allowed).then_some(*id)
            })
            .collect();
        let now = self.now;
        for line in &revoked {
            // The line is open by the app (found above): closing cannot fail.
            let _ = self.close_line(now, app, *line);
        }
        self.narrow_handles(app);
        revoked
    }

    /// The handles `app` holds, each brought within its current rights.
    fn narrow_handles(&mut self, app: AppId) {
        let Some(a) = self.m.apps.get(&app) else {
            return;
        };
        let may_own = a.privileges.contains(&Privilege::Owner);
        let may_monitor = a.privileges.contains(&Privilege::Monitor);
        let mut downgrade = Vec::new();
        let mut release = Vec::new();
        for c in self.m.calls.values() {
            let Some(&(_, held)) = c.handles.iter().find(|(h, _)| *h == app) else {
                continue;
            };
            let on_its_lines = self.may_hold_on_line_of(a, c.id);
            let allowed = match held {
                Privilege::Owner => may_own,
                Privilege::Monitor => may_monitor,
            };
            if allowed && on_its_lines {
                continue;
            }
            if held == Privilege::Owner && may_monitor && on_its_lines {
                downgrade.push(c.id);
            } else {
                release.push(c.id);
            }
        }
        for call in downgrade {
            self.grant(app, call, Privilege::Monitor);
        }
        for call in release {
            // The app holds a handle to the call (found above).
            let _ = self.op_deallocate(app, call);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AppConfig, AppPermission};
    use crate::error::ErrorCode;
    use crate::sim::Sim;
    use crate::switch::Command;
    use crate::types::{ForwardMode, ForwardRule, Privilege};
    use crate::{AppId, CallStateKind, Timestamp};

    /// Phones 1001–1003; `crm` may do everything on every line, `wall` is
    /// configured as the monitor-only app of issue 12 (no permissions given,
    /// so the defaults: none).
    fn office() -> (Sim, AppId, AppId) {
        let mut sim = Sim::new();
        for a in ["1001", "1002", "1003"] {
            sim.add_phone(a);
        }
        let crm = sim.switch.register_app(AppConfig::named("crm"));
        let privileges = vec![Privilege::Monitor];
        let wall = sim.switch.register_app(AppConfig {
            permissions: AppPermission::defaults(&privileges, true),
            privileges,
            ..AppConfig::named("wall")
        });
        for a in ["1001", "1002", "1003"] {
            let l = sim.switch.line_of(a).unwrap();
            sim.switch
                .open_line(crm, l, &[Privilege::Owner], &[])
                .unwrap();
            sim.switch
                .open_line(wall, l, &[Privilege::Monitor], &[])
                .unwrap();
        }
        (sim, crm, wall)
    }

    fn code(r: Result<crate::Reply, crate::TapiError>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn the_defaults_follow_the_privileges_and_lines() {
        use AppPermission::*;
        let both = [Privilege::Owner, Privilege::Monitor];
        assert_eq!(
            AppPermission::defaults(&both, true),
            [MakeCall, Forward, Settings]
        );
        assert_eq!(AppPermission::defaults(&both, false), [MakeCall, Forward]);
        assert!(AppPermission::defaults(&[Privilege::Monitor], true).is_empty());
    }

    #[test]
    fn a_monitor_only_app_cannot_become_owner_nor_open_as_owner() {
        let (mut sim, crm, wall) = office();
        let call = sim.make_call(crm, "1001", Some("1002")).unwrap();
        sim.phone("1002").answer();
        sim.run();
        assert_eq!(sim.switch.call_state(call), Some(CallStateKind::Connected));
        let before = sim.switch.model_snapshot();
        let (_, r) = sim.switch.request(
            Timestamp(1),
            wall,
            Command::SetCallPrivilege(call, Privilege::Owner),
        );
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::NoPrivilege);
        assert!(e.message.contains("wall"), "{}", e.message);
        assert_eq!(sim.switch.model_snapshot(), before, "nothing changed");
        // Still a monitor: a transfer is refused as before.
        let (_, r) = sim.switch.request(
            Timestamp(2),
            wall,
            Command::BlindTransfer(call, "1003".into()),
        );
        assert_eq!(code(r), ErrorCode::NotOwner);
        // Opening a line as owner is refused too.
        let l = sim.switch.line_of("1003").unwrap();
        let e = sim
            .switch
            .open_line(wall, l, &[Privilege::Owner], &[])
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoPrivilege);
        // An owner app still switches privileges both ways.
        let (_, r) = sim.switch.request(
            Timestamp(3),
            crm,
            Command::SetCallPrivilege(call, Privilege::Owner),
        );
        assert!(r.is_ok());
    }

    #[test]
    fn calls_forwarding_pickup_and_unpark_need_their_rights() {
        let (mut sim, crm, wall) = office();
        let (_, r) = sim.switch.request(
            Timestamp(1),
            wall,
            Command::MakeCall {
                from: "1001".into(),
                to: Some("1002".into()),
            },
        );
        assert_eq!(code(r), ErrorCode::NoPrivilege);
        let rule = ForwardRule {
            mode: ForwardMode::Unconditional,
            to: Some("1003".into()),
            caller: None,
        };
        let (_, r) = sim.switch.request(
            Timestamp(2),
            wall,
            Command::Forward("1001".into(), vec![rule.clone()], None),
        );
        assert_eq!(code(r), ErrorCode::NoPrivilege);
        assert_eq!(sim.switch.forwarding("1001").unwrap().0, vec![]);
        // Pickup and unpark would make it the owner of the new call.
        let (_, r) = sim.switch.request(
            Timestamp(3),
            wall,
            Command::Pickup("1001".into(), crate::PickupTarget::Address("1002".into())),
        );
        assert_eq!(code(r), ErrorCode::NoPrivilege);
        let (_, r) = sim.switch.request(
            Timestamp(4),
            wall,
            Command::Unpark("1001".into(), "7001".into()),
        );
        assert_eq!(code(r), ErrorCode::NoPrivilege);
        // An owner app without the permissions: refused as well.
        sim.switch
            .update_app(
                crm,
                AppConfig {
                    permissions: vec![AppPermission::Settings],
                    ..AppConfig::named("crm")
                },
            )
            .unwrap();
        let (_, r) = sim.switch.request(
            Timestamp(5),
            crm,
            Command::MakeCall {
                from: "1001".into(),
                to: Some("1002".into()),
            },
        );
        assert_eq!(code(r), ErrorCode::NoPrivilege);
        let (_, r) = sim.switch.request(
            Timestamp(6),
            crm,
            Command::Forward("1001".into(), vec![rule.clone()], None),
        );
        assert_eq!(code(r), ErrorCode::NoPrivilege);
        // Granted: both work.
        sim.switch.update_app(crm, AppConfig::named("crm")).unwrap();
        let (_, r) = sim.switch.request(
            Timestamp(7),
            crm,
            Command::Forward("1001".into(), vec![rule], None),
        );
        assert!(r.is_ok(), "{r:?}");
        assert!(sim.make_call(crm, "1002", Some("1003")).is_ok());
    }

    #[test]
    fn narrowing_an_app_closes_the_lines_it_may_no_longer_hold() {
        let (mut sim, crm, _) = office();
        let l1 = sim.switch.line_of("1001").unwrap();
        let l2 = sim.switch.line_of("1002").unwrap();
        let l3 = sim.switch.line_of("1003").unwrap();
        let closed = sim
            .switch
            .update_app(
                crm,
                AppConfig {
                    lines: vec!["1001".into(), "1002".into()],
                    ..AppConfig::named("crm")
                },
            )
            .unwrap();
        assert_eq!(closed, vec![l3]);
        let e = sim
            .switch
            .open_line(crm, l3, &[Privilege::Owner], &[])
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoPrivilege);
        // Owner taken away: lines open as owner close, a monitor open is fine.
        let closed = sim
            .switch
            .update_app(
                crm,
                AppConfig {
                    privileges: vec![Privilege::Monitor],
                    ..AppConfig::named("crm")
                },
            )
            .unwrap();
        assert_eq!(closed, vec![l1, l2]);
        sim.switch
            .open_line(crm, l1, &[Privilege::Monitor], &[])
            .unwrap();
    }

    /// `sup` may own and monitor every line, and opens them as monitor.
    fn with_supervisor(sim: &mut Sim) -> AppId {
        let sup = sim.switch.register_app(AppConfig::named("sup"));
        for a in ["1001", "1002", "1003"] {
            let l = sim.switch.line_of(a).unwrap();
            sim.switch
                .open_line(sup, l, &[Privilege::Monitor], &[])
                .unwrap();
        }
        sup
    }

    #[test]
    fn narrowing_an_app_downgrades_or_releases_the_handles_it_may_no_longer_hold() {
        let (mut sim, crm, _) = office();
        let sup = with_supervisor(&mut sim);
        let call = sim.make_call(crm, "1001", Some("1002")).unwrap();
        sim.phone("1002").answer();
        sim.run();
        let (_, r) = sim.switch.request(
            Timestamp(1),
            sup,
            Command::SetCallPrivilege(call, Privilege::Owner),
        );
        assert!(r.is_ok());
        assert_eq!(sim.switch.privilege(sup, call), Ok(Privilege::Owner));
        // The operator takes owner away: its monitor lines stay open, and
        // its owner handle becomes a monitor handle.
        let closed = sim
            .switch
            .update_app(
                sup,
                AppConfig {
                    privileges: vec![Privilege::Monitor],
                    ..AppConfig::named("sup")
                },
            )
            .unwrap();
        assert!(closed.is_empty());
        assert_eq!(sim.switch.privilege(sup, call), Ok(Privilege::Monitor));
        let (_, r) = sim.switch.request(Timestamp(2), sup, Command::Drop(call));
        assert_eq!(code(r), ErrorCode::NotOwner);
        // The call goes on; its other owner still controls it.
        assert_eq!(sim.switch.call_state(call), Some(CallStateKind::Connected));
        assert_eq!(sim.switch.privilege(crm, call), Ok(Privilege::Owner));
    }
}
