//! Several statements sent to the database together. SQLite runs a string of
//! statements in one call to its connection's thread, numbered parameters
//! binding across all of them, which spares a thread hand-off per statement;
//! PostgreSQL's extended protocol takes one statement per call, so there the
//! statements run one after another. Either way they run in order, in the
//! caller's transaction, and the rows they return come back in order.

use crate::backend_error;
use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::{Arguments, Database, Encode, Type};

/// Whether a backend runs a script as one call.
pub(crate) trait ScriptBackend: Database {
    const ONE_CALL: bool;
}

impl ScriptBackend for sqlx::Sqlite {
    const ONE_CALL: bool = true;
}

impl ScriptBackend for sqlx::Postgres {
    const ONE_CALL: bool = false;
}

/// Statements written with their own `$1, $2, …` and bound in that order,
/// as with `sqlx::query(..).bind(..)`.
pub(crate) struct Script<'q, DB: ScriptBackend> {
    /// On SQLite one call; on PostgreSQL one per statement.
    calls: Vec<(String, DB::Arguments<'q>)>,
    /// Values bound so far, across all statements.
    bound: usize,
    /// The first thing that went wrong building the script (a value that
    /// would not encode, say), reported by `run`.
    fault: Option<String>,
}

impl<'q, DB: ScriptBackend> Script<'q, DB> {
    pub fn new() -> Self {
        Self {
            calls: Vec::new(),
            bound: 0,
            fault: None,
        }
    }

    /// Adds a statement; its values follow with [`Script::bind`].
    pub fn push(&mut self, sql: &str) -> &mut Self {
        match self.calls.last_mut() {
            Some((text, _)) if DB::ONE_CALL => {
                text.push_str(";\n");
                if let Err(fault) = shift_parameters(sql, self.bound, text) {
                    self.fault.get_or_insert(fault);
                }
            }
            _ => self.calls.push((sql.to_owned(), DB::Arguments::default())),
        }
        self
    }

    /// Binds the last statement's next parameter.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, DB> + Type<DB>,
    {
        let added = match self.calls.last_mut() {
            Some((_, arguments)) => arguments.add(value).map_err(|error| error.to_string()),
            None => Err("a value was bound before any statement".to_owned()),
        };
        if let Err(fault) = added {
            self.fault.get_or_insert(fault);
        }
        self.bound += 1;
        self
    }
}

/// `run` for each backend: its arguments' lifetime must meet the text's, which
/// only a concrete backend's types allow.
macro_rules! impl_run {
    ($db:ty) => {
        impl<'q> Script<'q, $db> {
            /// Runs every statement in order, in `tx`; the rows they return, in order.
            pub async fn run(
                self,
                tx: &mut sqlx::Transaction<'_, $db>,
            ) -> StoreResult<Vec<<$db as Database>::Row>> {
                if let Some(fault) = self.fault {
                    return Err(StoreError::Backend(format!(
                        "a script could not be built: {fault}"
                    )));
                }
                let mut rows = Vec::new();
                for (sql, arguments) in self.calls {
                    rows.extend(
                        sqlx::query_with(&sql, arguments)
                            .fetch_all(&mut **tx)
                            .await
                            .map_err(backend_error)?,
                    );
                }
                Ok(rows)
            }
        }
    };
}

impl_run!(sqlx::Sqlite);
impl_run!(sqlx::Postgres);

/// Appends `sql` to `out` with every `$n` parameter renumbered `$(n + by)`.
/// The statements given to a script hold no `$` in literals or names.
fn shift_parameters(sql: &str, by: usize, out: &mut String) -> Result<(), String> {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number: usize = after[..digits]
            .parse()
            .map_err(|_| format!("a `$` that is not a numbered parameter in {sql:?}"))?;
        out.push('$');
        out.push_str(&(number + by).to_string());
        rest = &after[digits..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shift_parameters;

    #[test]
    fn parameters_are_renumbered_past_the_values_already_bound() {
        let mut out = String::from("SELECT $1;\n");
        shift_parameters("UPDATE t SET a = $2, b = $10 WHERE c = $1", 3, &mut out).unwrap();
        assert_eq!(out, "SELECT $1;\nUPDATE t SET a = $5, b = $13 WHERE c = $4");
    }

    #[test]
    fn a_dollar_that_is_no_parameter_is_refused() {
        let mut out = String::new();
        assert!(shift_parameters("SELECT 'US$ 5'", 1, &mut out).is_err());
    }
}
