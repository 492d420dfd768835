package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver: pure Go, no cgo
)

// sqliteStore is the Store in one SQLite file, through modernc.org/sqlite (a
// maintained pure-Go translation of SQLite, so the example builds without a C
// toolchain). Members are a table; media metadata is a JSON column, since it is only
// ever read back whole.
type sqliteStore struct {
	db *sql.DB
}

var _ Store = (*sqliteStore)(nil)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS conversations (
	id       TEXT PRIMARY KEY,
	kind     TEXT NOT NULL,
	name     TEXT NOT NULL DEFAULT '',
	last_seq INTEGER NOT NULL DEFAULT 0,
	active   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS members (
	conv TEXT NOT NULL,
	user TEXT NOT NULL,
	pos  INTEGER NOT NULL,
	PRIMARY KEY (conv, user)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user);
CREATE TABLE IF NOT EXISTS messages (
	conv      TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	sender    TEXT NOT NULL,
	type      TEXT NOT NULL,
	text      TEXT NOT NULL DEFAULT '',
	media     TEXT,
	sent_ms   INTEGER NOT NULL,
	recalled  INTEGER NOT NULL DEFAULT 0,
	client_id TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (conv, seq)
);
CREATE TABLE IF NOT EXISTS receipts (
	conv      TEXT NOT NULL,
	user      TEXT NOT NULL,
	delivered INTEGER NOT NULL DEFAULT 0,
	read      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (conv, user)
);
`

// openSQLite opens (creating if needed) the SQLite database at path.
func openSQLite(path string) (*sqliteStore, error) {
	// WAL lets readers run beside the writer; busy_timeout makes a second writer
	// wait instead of failing with SQLITE_BUSY.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and Append's read-then-insert
	// must not interleave with another Append of the same conversation.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot create the schema in %s: %w", path, err)
	}
	return &sqliteStore{db: db}, nil
}

func (s *sqliteStore) PutConversation(ctx context.Context, c Conversation) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, kind, name, active) VALUES (?, ?, ?, (SELECT COALESCE(MAX(active), 0) + 1 FROM conversations))
			ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name`, c.ID, c.Kind, c.Name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conv = ?`, c.ID); err != nil {
			return err
		}
		for i, u := range c.Members {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO members (conv, user, pos) VALUES (?, ?, ?)`, c.ID, u, i); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqliteStore) Conversation(ctx context.Context, id string) (Conversation, error) {
	c := Conversation{ID: id}
	err := s.db.QueryRowContext(ctx, `SELECT kind, name, last_seq FROM conversations WHERE id = ?`, id).Scan(&c.Kind, &c.Name, &c.LastSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, ErrNotFound
	}
	if err != nil {
		return Conversation{}, err
	}
	c.Members, err = s.members(ctx, id)
	return c, err
}

func (s *sqliteStore) members(ctx context.Context, conv string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user FROM members WHERE conv = ? ORDER BY pos`, conv)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (s *sqliteStore) Conversations(ctx context.Context, user string) ([]Conversation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.id FROM conversations c JOIN members m ON m.conv = c.id WHERE m.user = ? ORDER BY c.active DESC`, user)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Conversation, 0, len(ids))
	for _, id := range ids {
		c, err := s.Conversation(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *sqliteStore) Append(ctx context.Context, m Message) (Message, error) {
	media, err := encodeMedia(m.Media)
	if err != nil {
		return Message{}, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE conversations SET last_seq = last_seq + 1, active = (SELECT COALESCE(MAX(active), 0) + 1 FROM conversations) WHERE id = ? RETURNING last_seq`, m.Conv).Scan(&m.Seq)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO messages (conv, seq, sender, type, text, media, sent_ms, recalled, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.Conv, m.Seq, m.From, m.Type, m.Text, media, m.SentMS, m.Recalled, m.ClientID)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

const messageColumns = `conv, seq, sender, type, text, media, sent_ms, recalled, client_id`

type scanner interface{ Scan(dest ...any) error }

func scanMessage(r scanner) (Message, error) {
	var m Message
	var media sql.NullString
	if err := r.Scan(&m.Conv, &m.Seq, &m.From, &m.Type, &m.Text, &media, &m.SentMS, &m.Recalled, &m.ClientID); err != nil {
		return Message{}, err
	}
	if media.Valid && media.String != "" {
		m.Media = new(Media)
		if err := json.Unmarshal([]byte(media.String), m.Media); err != nil {
			return Message{}, fmt.Errorf("message %s/%d: bad media column: %w", m.Conv, m.Seq, err)
		}
	}
	return m, nil
}

func encodeMedia(md *Media) (sql.NullString, error) {
	if md == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(md)
	return sql.NullString{String: string(b), Valid: true}, err
}

func (s *sqliteStore) Message(ctx context.Context, conv string, seq int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE conv = ? AND seq = ?`, conv, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	return m, err
}

func (s *sqliteStore) Recall(ctx context.Context, conv string, seq int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, `UPDATE messages SET recalled = 1, text = '', media = NULL WHERE conv = ? AND seq = ? RETURNING `+messageColumns, conv, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	return m, err
}

func (s *sqliteStore) History(ctx context.Context, conv string, before int64, limit int) ([]Message, bool, error) {
	if _, err := s.Conversation(ctx, conv); err != nil {
		return nil, false, err
	}
	if before <= 0 {
		before = 1 << 62
	}
	// One more than asked says whether older messages exist.
	msgs, err := s.query(ctx, `SELECT `+messageColumns+` FROM messages WHERE conv = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, conv, before, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

func (s *sqliteStore) Range(ctx context.Context, conv string, after, upto int64, limit int) ([]Message, error) {
	if _, err := s.Conversation(ctx, conv); err != nil {
		return nil, err
	}
	return s.query(ctx, `SELECT `+messageColumns+` FROM messages WHERE conv = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, conv, after, upto, limit)
}

func (s *sqliteStore) query(ctx context.Context, q string, args ...any) ([]Message, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *sqliteStore) MarkReceipt(ctx context.Context, conv, user string, kind ReceiptKind, seq int64) (int64, error) {
	col := "delivered"
	if kind == Read {
		col = "read"
	}
	var old int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM conversations WHERE id = ?`, conv).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		err := tx.QueryRowContext(ctx, `SELECT `+col+` FROM receipts WHERE conv = ? AND user = ?`, conv, user).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO receipts (conv, user, `+col+`) VALUES (?, ?, ?)
			ON CONFLICT (conv, user) DO UPDATE SET `+col+` = MAX(`+col+`, excluded.`+col+`)`, conv, user, seq)
		return err
	})
	return old, err
}

func (s *sqliteStore) Receipts(ctx context.Context, conv string) (map[string]Receipt, error) {
	if _, err := s.Conversation(ctx, conv); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT user, delivered, read FROM receipts WHERE conv = ?`, conv)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]Receipt)
	for rows.Next() {
		var u string
		var r Receipt
		if err := rows.Scan(&u, &r.Delivered, &r.Read); err != nil {
			return nil, err
		}
		out[u] = r
	}
	return out, rows.Err()
}

func (s *sqliteStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqliteStore) Close() error { return s.db.Close() }
