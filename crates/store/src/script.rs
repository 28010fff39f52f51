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

/// The most statements one call carries: a few dozen gain all there is to
/// gain, and each size of script is one entry in the statement cache.
const MOST_STATEMENTS_PER_CALL: usize = 32;

/// The highest parameter number SQLite takes by default
/// (`SQLITE_MAX_VARIABLE_NUMBER`; the build sqlx bundles allows more).
const MOST_VALUES_PER_CALL: usize = 32_766;

/// Statements written with their own `$1, $2, …` and bound in that order,
/// as with `sqlx::query(..).bind(..)`.
pub(crate) struct Script<'q, DB: ScriptBackend> {
    /// On SQLite as few calls as the limits above allow; on PostgreSQL one
    /// per statement.
    calls: Vec<(String, DB::Arguments<'q>)>,
    /// Statements in the last call.
    statements: usize,
    /// Values bound in the last call.
    bound: usize,
    /// The first thing that went wrong building the script (a value that
    /// would not encode, say), reported by `run`.
    fault: Option<String>,
}

impl<DB: ScriptBackend> Default for Script<'_, DB> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'q, DB: ScriptBackend> Script<'q, DB> {
    pub fn new() -> Self {
        Self {
            calls: Vec::new(),
            statements: 0,
            bound: 0,
            fault: None,
        }
    }

    /// Adds a statement; its values follow with [`Script::bind`].
    pub fn push(&mut self, sql: &str) -> &mut Self {
        if DB::ONE_CALL && self.statements > 0 && self.statements < MOST_STATEMENTS_PER_CALL {
            match renumber(sql, self.bound) {
                Ok((shifted, values)) if self.bound + values <= MOST_VALUES_PER_CALL => {
                    if let Some((text, _)) = self.calls.last_mut() {
                        text.push_str(";\n");
                        text.push_str(&shifted);
                        self.statements += 1;
                        return self;
                    }
                }
                Ok(_) => {}
                Err(fault) => {
                    self.fault.get_or_insert(fault);
                }
            }
        }
        self.calls.push((sql.to_owned(), DB::Arguments::default()));
        self.statements = 1;
        self.bound = 0;
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
            /// Runs every statement in order on `connection` (a transaction's,
            /// or one whose script begins one); the rows they return, in order.
            pub async fn run(
                self,
                connection: &mut <$db as Database>::Connection,
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
                            .fetch_all(&mut *connection)
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

/// `sql` with every `$n` parameter renumbered `$(n + by)`, and its highest
/// `n`. The statements given to a script hold no `$` in literals or names.
fn renumber(sql: &str, by: usize) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number: usize = after[..digits]
            .parse()
            .map_err(|_| format!("a `$` that is not a numbered parameter in {sql:?}"))?;
        highest = highest.max(number);
        out.push('$');
        out.push_str(&(number + by).to_string());
        rest = &after[digits..];
    }
    out.push_str(rest);
    Ok((out, highest))
}

#[cfg(test)]
mod tests {
    use super::{renumber, Script, MOST_STATEMENTS_PER_CALL, MOST_VALUES_PER_CALL};

    #[test]
    fn parameters_are_renumbered_past_the_values_already_bound() {
        let (out, highest) = renumber("UPDATE t SET a = $2, b = $10 WHERE c = $1", 3).unwrap();
        assert_eq!(out, "UPDATE t SET a = $5, b = $13 WHERE c = $4");
        assert_eq!(highest, 10);
    }

    #[test]
    fn a_dollar_that_is_no_parameter_is_refused() {
        assert!(renumber("SELECT 'US$ 5'", 1).is_err());
    }

    #[test]
    fn sqlite_joins_statements_into_calls_within_its_limits() {
        let mut script = Script::<sqlx::Sqlite>::new();
        for n in 0..MOST_STATEMENTS_PER_CALL + 1 {
            script.push("SELECT $1, $2").bind(n as i64).bind(0i64);
        }
        let texts: Vec<&str> = script.calls.iter().map(|(text, _)| text.as_str()).collect();
        assert_eq!(
            texts.len(),
            2,
            "a call holds {MOST_STATEMENTS_PER_CALL} statements"
        );
        assert!(texts[0].ends_with(&format!(
            "SELECT ${}, ${}",
            2 * MOST_STATEMENTS_PER_CALL - 1,
            2 * MOST_STATEMENTS_PER_CALL
        )));
        assert_eq!(texts[1], "SELECT $1, $2");

        let values = MOST_VALUES_PER_CALL / 2 + 1;
        let wide = (1..=values)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut script = Script::<sqlx::Sqlite>::new();
        for _ in 0..2 {
            script.push(&format!("SELECT {wide}"));
            for n in 0..values {
                script.bind(n as i64);
            }
        }
        assert_eq!(
            script.calls.len(),
            2,
            "no call numbers past SQLite's highest parameter"
        );
    }

    #[test]
    fn postgres_takes_one_statement_per_call() {
        let mut script = Script::<sqlx::Postgres>::new();
        script.push("SELECT $1").bind(1i64);
        script.push("SELECT $1").bind(2i64);
        assert_eq!(script.calls.len(), 2);
    }
}
