// Package domain holds shiftcast's entities, the eligibility rules and the
// error vocabulary shared by every transport. It is pure: it imports neither
// pgx nor nats, so the rules can be tested and reasoned about in isolation and
// used as the oracle that the SQL queries are checked against.
package domain
