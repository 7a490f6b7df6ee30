//! `from_env`: each variable the partner documents, read in order; the missing (or not
//! Unicode) one named in `ConfigError::MissingEnv`, one that does not parse named in
//! `ConfigError::InvalidEnv`, and the values read are the ones sent. The rows hold the
//! harness's environment lock ([`Env`]) while they change the environment.

use reqwest_partner_auth::error::ConfigError;
use reqwest_partner_auth::Error;

use crate::harness::{Env, EnvValue, Partner, ENV_SECRET, SECRET};

/// `from_env` fails with `MissingEnv` naming `name`, and its `Display` says so.
#[track_caller]
fn assert_missing<P: Partner>(name: &'static str, situation: &str) {
    let partner = P::NAME;
    match P::from_env() {
        Err(err @ Error::Config(ConfigError::MissingEnv { name: got })) => {
            assert_eq!(got, name, "{partner}: {situation}");
            let display = format!("environment variable {name} is not set");
            assert!(err.to_string().contains(&display), "{partner}: {err}");
        }
        other => panic!("{partner}: {situation}: expected MissingEnv {{ {name} }}, got {other:?}"),
    }
}

/// With the variables before it set and the others unset, the first unset one is named;
/// with only one variable unset, that one is named.
pub(crate) fn from_env_names_each_missing_variable<P: Partner>() {
    let env = Env::<P>::lock();
    for (index, (name, _)) in P::ENV.iter().enumerate() {
        env.set_before(index, SECRET);
        assert_missing::<P>(name, "it and the ones after it unset");

        env.set_all(SECRET);
        env.remove(name);
        assert_missing::<P>(name, "only it unset");
    }
}

/// A variable that is set but not Unicode is reported by name, as not set.
#[cfg(unix)]
pub(crate) fn from_env_names_a_variable_that_is_not_unicode<P: Partner>() {
    use std::os::unix::ffi::OsStrExt as _;
    let env = Env::<P>::lock();
    for (name, _) in P::ENV {
        env.set_all(SECRET);
        env.set(name, std::ffi::OsStr::from_bytes(b"not-\xff-unicode"));
        assert_missing::<P>(name, "not unicode");
    }
}

/// A variable that is set but empty or blank is `InvalidEnv` naming it: an empty key or
/// password is a deployment mistake, not a credential to send.
pub(crate) fn from_env_names_a_blank_variable<P: Partner>() {
    let partner = P::NAME;
    let env = Env::<P>::lock();
    for (name, _) in P::ENV {
        for blank in ["", "  "] {
            env.set_all(SECRET);
            env.set(name, blank);
            match P::from_env() {
                Err(Error::Config(ConfigError::InvalidEnv { name: got, .. })) => {
                    assert_eq!(got, *name, "{partner}: {name}={blank:?}")
                }
                other => panic!("{partner}: {name}={blank:?}: expected InvalidEnv, got {other:?}"),
            }
        }
    }
}

/// A partner whose variables must parse (integers).
#[cfg(feature = "adgem")]
pub(crate) trait ParsedEnv: Partner {
    /// Variables with a value that does not parse, and what each should hold.
    const INVALID: &'static [(&'static str, &'static str, &'static str)];
}

/// A value that does not parse is `InvalidEnv` naming the variable and what it should hold,
/// whether the variables after it are set or not (they are read in order).
#[cfg(feature = "adgem")]
pub(crate) fn from_env_names_a_variable_that_does_not_parse<P: ParsedEnv>() {
    let partner = P::NAME;
    let env = Env::<P>::lock();
    for &(name, value, expected) in P::INVALID {
        let index = P::ENV.iter().position(|(n, _)| *n == name).unwrap();
        for later_set in [false, true] {
            if later_set {
                env.set_all(SECRET);
            } else {
                env.set_before(index, SECRET);
            }
            env.set(name, value);
            let situation = format!("{name}={value:?}, later variables set: {later_set}");
            let err = P::from_env().expect_err(&situation);
            match &err {
                Error::Config(config) => assert_eq!(
                    config,
                    &ConfigError::InvalidEnv { name, expected },
                    "{partner}: {situation}"
                ),
                other => panic!("{partner}: {situation}: expected InvalidEnv, got {other:?}"),
            }
            let display = format!("environment variable {name} is not {expected}");
            assert!(err.to_string().contains(&display), "{partner}: {err}");
        }
    }
}

/// With every variable set, `from_env` succeeds; `Debug` of what it read shows the ids and
/// not the secret; and those credentials are the ones sent (a mock that answers only the
/// exact request of the contract answers once).
pub(crate) async fn from_env_values_are_the_ones_sent<P: Partner>() {
    let partner = P::NAME;
    let credentials = {
        let env = Env::<P>::lock();
        env.set_all(ENV_SECRET);
        let read = P::from_env();
        drop(env);
        read.unwrap_or_else(|err| panic!("{partner}: {err:?}"))
    };
    let shown = format!("{credentials:?}");
    assert!(!shown.contains(ENV_SECRET), "{partner}: {shown}");
    for (_, value) in P::ENV {
        if let EnvValue::Public(id) = value {
            assert!(
                shown.contains(id),
                "{partner}: {id} is not a secret: {shown}"
            );
        }
    }

    P::assert_sent(credentials, ENV_SECRET).await;
}
