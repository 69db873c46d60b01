"""The journal's schema, as an ordered list of migrations (simonw/llm's ``@migration`` list, in SQL).

A journal records in ``_migrations`` the name of every migration applied to it; opening a journal
applies, in order, the ones it lacks. Migrations are append-only: a released one is never edited,
a change of schema is a new entry at the end. Each is a tuple of statements rather than a script so
that the store can run it inside one ``BEGIN IMMEDIATE`` transaction (two processes opening a new
journal at once must not both create the tables).

This module holds SQL text only; ``journal.db`` is the one module that talks to sqlite3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One step of the schema: a stable name and the statements that take the journal there.

    ``readers_need``: false when Rez reads a journal without it as well as with it. Opening a
    journal only to read it (``Journal(create=False)``: ``rez traces``) then leaves it as it is, and
    the first write applies it; reading never needs a backup.
    """

    name: str
    statements: tuple[str, ...]
    readers_need: bool = True


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "m001_initial",
        (
            # One row per command invocation; the hashes tell whether two runs used the same config.
            """
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                started_ms INTEGER NOT NULL,
                command TEXT NOT NULL,
                argv TEXT NOT NULL,
                config_hash TEXT NOT NULL,
                profile_hash TEXT NOT NULL,
                versions TEXT NOT NULL,
                pid INTEGER NOT NULL
            )
            """,
            # Inputs are nullable: a cycle that failed before its context existed is still recorded.
            """
            CREATE TABLE cycles (
                trace_id TEXT PRIMARY KEY,
                run_id INTEGER REFERENCES runs (id),
                symbol TEXT NOT NULL,
                exchange TEXT,
                simulated INTEGER,
                mode TEXT,
                model TEXT,
                profile TEXT,
                as_of_ms INTEGER,
                candles TEXT,
                context TEXT,
                context_text TEXT,
                started_ms INTEGER NOT NULL,
                finished_ms INTEGER,
                status TEXT,
                action TEXT,
                error TEXT,
                source TEXT,
                confidence REAL,
                decision TEXT,
                trace TEXT,
                signals TEXT,
                usage TEXT,
                cost_usd REAL,
                llm_calls INTEGER,
                tool_calls INTEGER,
                turn_count INTEGER,
                backtest_id TEXT
            )
            """,
            "CREATE INDEX cycles_started ON cycles (started_ms)",
            "CREATE INDEX cycles_symbol_as_of ON cycles (symbol, as_of_ms)",
            """
            CREATE TABLE turns (
                trace_id TEXT NOT NULL REFERENCES cycles (trace_id),
                idx INTEGER NOT NULL,
                content TEXT,
                tools_offered INTEGER,
                prompt_tokens INTEGER,
                completion_tokens INTEGER,
                duration_ms REAL,
                PRIMARY KEY (trace_id, idx)
            )
            """,
            # seq keeps the order the model asked for the calls in, which call ids do not.
            """
            CREATE TABLE tool_calls (
                trace_id TEXT NOT NULL,
                turn_idx INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                call_id TEXT,
                name TEXT NOT NULL,
                arguments TEXT,
                ok INTEGER NOT NULL,
                content TEXT,
                rows TEXT,
                duration_ms REAL,
                cached INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (trace_id, turn_idx, seq),
                FOREIGN KEY (trace_id, turn_idx) REFERENCES turns (trace_id, idx)
            )
            """,
            """
            CREATE TABLE verdicts (
                trace_id TEXT NOT NULL REFERENCES cycles (trace_id),
                verdict_idx INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                rule TEXT NOT NULL,
                passed INTEGER NOT NULL,
                detail TEXT,
                PRIMARY KEY (trace_id, verdict_idx, seq)
            )
            """,
        ),
    ),
    Migration(
        "m002_scores",
        (
            # One score per decision: scoring it again (another horizon, --force) replaces the row.
            # outcome, r_multiple, exit_* are columns so that SQL can aggregate them; the rest of the
            # judgement (entry, levels, the naive trades of a hold, the memory's summary) is details.
            """
            CREATE TABLE scores (
                trace_id TEXT PRIMARY KEY REFERENCES cycles (trace_id),
                scored_ms INTEGER NOT NULL,
                horizon INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                r_multiple REAL,
                exit_price REAL,
                exit_ms INTEGER,
                details TEXT
            )
            """,
        ),
    ),
    Migration(
        "m003_turn_reasoning",
        # A reasoning model's thinking (reasoning_content or <think> blocks), apart from its answer.
        ("ALTER TABLE turns ADD COLUMN reasoning TEXT",),
    ),
    Migration(
        "m004_blobs",
        (
            # Large payloads stored once, by content (``journal.blobs``): the id of a blob is what a
            # cycle holds; ``hash`` finds an equal payload already stored. ``body`` is the text as
            # it is, or (a BLOB) deflated with the blob ``dictionary`` as zlib's preset dictionary.
            """
            CREATE TABLE blobs (
                id INTEGER PRIMARY KEY,
                hash BLOB NOT NULL UNIQUE,
                body BLOB NOT NULL,
                dictionary INTEGER
            )
            """,
            # A backtest cycle keeps its payload in blobs and these columns NULL: profile, candles,
            # context and context_text (its inputs), decision, trace, signals and usage (its record).
            "ALTER TABLE cycles ADD COLUMN profile_blob INTEGER",
            "ALTER TABLE cycles ADD COLUMN inputs_blob INTEGER",
            "ALTER TABLE cycles ADD COLUMN record_blob INTEGER",
            # Deleting a run (rez journal prune) looks for the cycles that still name it.
            "CREATE INDEX cycles_run ON cycles (run_id)",
        ),
        readers_need=False,
    ),
    Migration(
        "m005_paper",
        (
            # The paper account: one per exchange, its cash equity (fees and closed trades in it).
            """
            CREATE TABLE paper_accounts (
                name TEXT PRIMARY KEY,
                initial_equity REAL NOT NULL,
                equity REAL NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            )
            """,
            # One book per symbol: the candles walked up to ``walked_ms`` and what they left (the
            # position, the order waiting for the next open, a close due at the next open), as the
            # engine's ``AccountState`` JSON.
            """
            CREATE TABLE paper_books (
                account TEXT NOT NULL REFERENCES paper_accounts (name),
                symbol TEXT NOT NULL,
                timeframe TEXT NOT NULL,
                walked_ms INTEGER NOT NULL,
                state TEXT NOT NULL,
                updated_ms INTEGER NOT NULL,
                PRIMARY KEY (account, symbol)
            )
            """,
            # What happened, in order: orders, fills, exits (a trade's numbers in detail), notes.
            """
            CREATE TABLE paper_events (
                id INTEGER PRIMARY KEY,
                account TEXT NOT NULL,
                symbol TEXT NOT NULL,
                ts_ms INTEGER NOT NULL,
                kind TEXT NOT NULL,
                trace_id TEXT,
                detail TEXT NOT NULL,
                written_ms INTEGER NOT NULL
            )
            """,
            "CREATE INDEX paper_events_account ON paper_events (account, id)",
        ),
        readers_need=False,
    ),
    Migration(
        "m006_backtests",
        (
            # One row per `rez backtest`: what was asked (request JSON: the span, mode, model, data,
            # profile), what it found (report JSON: metrics, curves, trades, decisions), the tape it
            # read if any, and the audit once one has run (its grade, the reasons, the whole audit).
            """
            CREATE TABLE backtests (
                id TEXT PRIMARY KEY,
                run_id INTEGER REFERENCES runs (id),
                created_ms INTEGER NOT NULL,
                symbol TEXT NOT NULL,
                request TEXT NOT NULL,
                report TEXT NOT NULL,
                tape_hash TEXT,
                grade TEXT,
                grade_reasons TEXT,
                audit TEXT,
                audited_ms INTEGER
            )
            """,
        ),
        readers_need=False,
    ),
)
