package domain

import "time"

// Page limits shared by every listing and transport.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ShiftsQuery asks for the open shifts a worker can take, ordered by
// (Start, ID). From and To, when set, bound Start as [From, To). After, when
// set, resumes after that position.
type ShiftsQuery struct {
	WorkerID int64
	From     *time.Time
	To       *time.Time
	After    *Cursor
	Limit    int
}

// WorkersQuery asks for the workers who can take a shift, ordered by id.
type WorkersQuery struct {
	ShiftID int64
	AfterID int64
	Limit   int
}

// ShiftsPage is one page of a worker's eligible shifts. Shifts has at most
// Limit entries; More tells whether a further page exists.
type ShiftsPage struct {
	Shifts []Shift
	More   bool
}

// WorkersPage is one page of a shift's eligible workers.
type WorkersPage struct {
	Workers []Worker
	More    bool
}
