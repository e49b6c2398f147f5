package eligibility

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/shiftcast/shiftcast/domain"
)

// ShiftJSON is one shift in a listing.
type ShiftJSON struct {
	ID         int64     `json:"id"`
	FacilityID int64     `json:"facility_id"`
	Profession string    `json:"profession"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
}

// ShiftsResponse is the body of a worker's eligible-shifts listing.
type ShiftsResponse struct {
	Shifts     []ShiftJSON `json:"shifts"`
	NextCursor *string     `json:"next_cursor"`
}

// WorkerJSON is one worker in a listing.
type WorkerJSON struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	Profession string `json:"profession"`
}

// WorkersResponse is the body of a shift's eligible-workers listing.
type WorkersResponse struct {
	Workers    []WorkerJSON `json:"workers"`
	NextCursor *string      `json:"next_cursor"`
}

// AppendJSON appends r as JSON to dst. It produces the same bytes as
// encoding/json (a test holds it to that) without reflection: this listing
// is the hottest path in the service.
func (r ShiftsResponse) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"shifts":[`...)
	for i, s := range r.Shifts {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, s.ID, 10)
		dst = append(dst, `,"facility_id":`...)
		dst = strconv.AppendInt(dst, s.FacilityID, 10)
		dst = append(dst, `,"profession":`...)
		dst = strconv.AppendQuote(dst, s.Profession)
		dst = append(dst, `,"start":"`...)
		dst = s.Start.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, `","end":"`...)
		dst = s.End.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"next_cursor":`...)
	return appendCursor(dst, r.NextCursor)
}

// AppendJSON appends r as JSON to dst; names go through encoding/json's
// string escaping so any name is safe.
func (r WorkersResponse) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"workers":[`...)
	for i, w := range r.Workers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, w.ID, 10)
		dst = append(dst, `,"name":`...)
		name, _ := json.Marshal(w.Name) // a string always marshals
		dst = append(dst, name...)
		dst = append(dst, `,"profession":`...)
		dst = strconv.AppendQuote(dst, w.Profession)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"next_cursor":`...)
	return appendCursor(dst, r.NextCursor)
}

// Cursors are base64url, so quoting needs no escaping.
func appendCursor(dst []byte, c *string) []byte {
	if c == nil {
		return append(dst, `null}`...)
	}
	dst = append(dst, '"')
	dst = append(dst, *c...)
	return append(dst, `"}`...)
}

// ErrorJSON is the body of every error answer, on every transport.
type ErrorJSON struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries the error's code and caller-safe message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorBody returns the JSON error body for err.
func ErrorBody(err error) []byte {
	b, _ := json.Marshal(ErrorJSON{Error: ErrorDetail{Code: domain.ErrorCode(err), Message: domain.ErrorMessage(err)}})
	return b
}

// Status maps an error code to the status both transports report: the HTTP
// status, and micro's Nats-Service-Error-Code.
func Status(code string) int {
	switch code {
	case "":
		return 200
	case domain.EINVALID:
		return 400
	case domain.ENOTFOUND:
		return 404
	case domain.EUNAVAILABLE:
		return 503
	default:
		return 500
	}
}

// VerdictJSON encodes an explain answer.
func VerdictJSON(v domain.Verdict) []byte {
	if v.Reasons == nil {
		v.Reasons = []domain.Reason{}
	}
	return MustJSON(v)
}

// MustJSON marshals values that cannot fail to marshal (plain structs and
// maps of strings and numbers); a failure is a programming error.
func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("eligibility: marshal " + err.Error())
	}
	return b
}
