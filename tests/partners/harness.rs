//! The description every partner gives ([`Partner`]), and the process environment, which
//! the `from_env` rows take one at a time ([`Env`]).

use std::ffi::OsStr;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard, PoisonError};

use reqwest_partner_auth::Error;
use url::Url;

/// The sentinel secret of most rows: it must never show up in `Debug`, `Display` or errors.
pub(crate) const SECRET: &str = crate::common::SECRET;

/// A secret whose encodings all differ from it: `/` and `+` change under JSON (`\/`) and
/// form encoding (`%2F`, `%2B`), the space becomes `+` or `%20`, the quote and backslash are
/// escaped in JSON, `é` becomes `\u00e9` or `%C3%A9`.
pub(crate) const ODD_SECRET: &str = "SENTINEL/s3cr+t \"q\\é";

/// The secret the `from_env` rows put in the environment: every character form encoding
/// escapes, and still a legal header value (an API key travels in one).
pub(crate) const ENV_SECRET: &str = "SENTINEL-ENV/s3c&r=t+ x";

/// What an environment variable read by `from_env` holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EnvValue {
    /// A value that is not secret (an id), shown by `Debug`.
    Public(&'static str),
    /// The secret.
    Secret,
}

/// One partner, as every row sees it.
pub(crate) trait Partner: 'static {
    /// The partner's name, for failure messages.
    const NAME: &'static str;
    /// What `from_env` returns and the layer is built from.
    type Credentials: Clone + fmt::Debug;
    /// The variables `from_env` reads, in the order it reads them.
    const ENV: &'static [(&'static str, EnvValue)];

    /// `from_env` of the partner's credentials.
    fn from_env() -> Result<Self::Credentials, Error>;

    /// Credentials whose secret is `secret` and whose ids are the public values of
    /// [`ENV`](Self::ENV).
    fn credentials(secret: &str) -> Self::Credentials;

    /// The values `Debug` of [`credentials`](Self::credentials) shows: they are not secret.
    fn public_ids() -> Vec<String> {
        Self::ENV
            .iter()
            .filter_map(|(_, value)| match value {
                EnvValue::Public(v) => Some((*v).to_owned()),
                EnvValue::Secret => None,
            })
            .collect()
    }

    /// `Debug` (plain and pretty) of everything that holds `credentials` before a request:
    /// the credentials, the source and the layer against `base`.
    fn debug_parts(credentials: Self::Credentials, base: &Url) -> String;

    /// Sends one request with `credentials` to a mock that answers only the exact request the
    /// contract describes with `secret` as the secret, and asserts it answered, once.
    async fn assert_sent(credentials: Self::Credentials, secret: &str);
}

/// The process environment is global: the `from_env` rows hold this lock while they change
/// it, so they never see each other's variables.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The environment of `P`, locked, every variable of `P` unset; unset again when dropped.
pub(crate) struct Env<P: Partner> {
    _lock: MutexGuard<'static, ()>,
    partner: PhantomData<P>,
}

impl<P: Partner> Env<P> {
    /// Takes the lock (a row that failed while holding it does not stop the others) and
    /// unsets every variable of `P`.
    pub(crate) fn lock() -> Self {
        let env = Self {
            _lock: ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner),
            partner: PhantomData,
        };
        env.clear();
        env
    }

    /// Unsets every variable of `P`.
    pub(crate) fn clear(&self) {
        for (name, _) in P::ENV {
            std::env::remove_var(name);
        }
    }

    /// Sets every variable of `P` to a valid value, `secret` for the secret one.
    pub(crate) fn set_all(&self, secret: &str) {
        for (name, value) in P::ENV {
            std::env::set_var(name, valid(*value, secret));
        }
    }

    /// Sets the variables of `P` before the one at `index` to valid values and unsets the
    /// others.
    pub(crate) fn set_before(&self, index: usize, secret: &str) {
        self.clear();
        for (name, value) in &P::ENV[..index] {
            std::env::set_var(name, valid(*value, secret));
        }
    }

    /// Sets `name` to `value`.
    pub(crate) fn set(&self, name: &str, value: impl AsRef<OsStr>) {
        std::env::set_var(name, value);
    }

    /// Unsets `name`.
    pub(crate) fn remove(&self, name: &str) {
        std::env::remove_var(name);
    }
}

impl<P: Partner> Drop for Env<P> {
    fn drop(&mut self) {
        self.clear();
    }
}

fn valid(value: EnvValue, secret: &str) -> &str {
    match value {
        EnvValue::Public(v) => v,
        EnvValue::Secret => secret,
    }
}
