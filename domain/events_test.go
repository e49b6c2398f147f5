package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
)

// evExample is a valid event of one type: its data as the wire carries it
// and the typed payload DecodeEvent must produce from it.
type evExample struct {
	typ  string
	data string
	want any
}

// evTime is the envelope time of every example, with a non-UTC offset so
// that normalization to UTC is exercised; evTimeUTC is the same instant.
const evTime = "2024-03-01T12:00:00+02:00"

var evTimeUTC = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// evExamples returns one valid example per event type, in EventTypes order.
func evExamples() []evExample {
	return []evExample{
		{
			typ:  domain.TypeShiftCreated,
			data: `{"id":11,"facility_id":3,"profession":"RN","start":"2024-03-10T08:00:00-05:00","end":"2024-03-10T16:30:00-05:00"}`,
			want: &domain.ShiftCreated{
				ID: 11, FacilityID: 3, Profession: domain.RN,
				Start: time.Date(2024, 3, 10, 13, 0, 0, 0, time.UTC),
				End:   time.Date(2024, 3, 10, 21, 30, 0, 0, time.UTC),
			},
		},
		{typ: domain.TypeShiftClaimed, data: `{"shift_id":11,"worker_id":7}`, want: &domain.ShiftClaimed{ShiftID: 11, WorkerID: 7}},
		{typ: domain.TypeShiftReleased, data: `{"shift_id":12}`, want: &domain.ShiftRef{ShiftID: 12}},
		{typ: domain.TypeShiftDeleted, data: `{"shift_id":13}`, want: &domain.ShiftRef{ShiftID: 13}},
		{
			typ:  domain.TypeWorkerCreated,
			data: `{"id":7,"name":"Ada Lovelace","profession":"CNA","is_active":true}`,
			want: &domain.WorkerCreated{ID: 7, Name: "Ada Lovelace", Profession: domain.CNA, IsActive: true},
		},
		{typ: domain.TypeWorkerActivated, data: `{"worker_id":8}`, want: &domain.WorkerRef{WorkerID: 8}},
		{typ: domain.TypeWorkerDeactivated, data: `{"worker_id":9}`, want: &domain.WorkerRef{WorkerID: 9}},
		{typ: domain.TypeWorkerDocumentAdded, data: `{"worker_id":7,"document_id":2}`, want: &domain.WorkerDocument{WorkerID: 7, DocumentID: 2}},
		{typ: domain.TypeWorkerDocumentRemoved, data: `{"worker_id":7,"document_id":4}`, want: &domain.WorkerDocument{WorkerID: 7, DocumentID: 4}},
		{
			typ:  domain.TypeFacilityCreated,
			data: `{"id":3,"name":"St. Mary's","is_active":false}`,
			want: &domain.FacilityCreated{ID: 3, Name: "St. Mary's", IsActive: false},
		},
		{typ: domain.TypeFacilityActivated, data: `{"facility_id":3}`, want: &domain.FacilityRef{FacilityID: 3}},
		{typ: domain.TypeFacilityDeactivated, data: `{"facility_id":5}`, want: &domain.FacilityRef{FacilityID: 5}},
		{typ: domain.TypeFacilityRequirementAdded, data: `{"facility_id":3,"document_id":2}`, want: &domain.FacilityRequirement{FacilityID: 3, DocumentID: 2}},
		{typ: domain.TypeFacilityRequirementRemoved, data: `{"facility_id":3,"document_id":6}`, want: &domain.FacilityRequirement{FacilityID: 3, DocumentID: 6}},
		{
			typ:  domain.TypeDocumentCreated,
			data: `{"id":2,"name":"BLS certificate","is_active":true}`,
			want: &domain.DocumentCreated{ID: 2, Name: "BLS certificate", IsActive: true},
		},
	}
}

// evRaw builds a structured-mode CloudEvent of type typ carrying data (raw
// JSON), with the envelope's attributes edited by set (a nil value deletes
// the attribute; otherwise the value is raw JSON).
func evRaw(t testing.TB, typ, data string, set map[string]*string) []byte {
	t.Helper()
	env := map[string]json.RawMessage{
		"specversion":     json.RawMessage(`"1.0"`),
		"id":              json.RawMessage(`"evt-0001"`),
		"source":          json.RawMessage(`"/marketplace/tests"`),
		"type":            json.RawMessage(`"` + typ + `"`),
		"time":            json.RawMessage(`"` + evTime + `"`),
		"datacontenttype": json.RawMessage(`"application/json"`),
		"data":            json.RawMessage(data),
	}
	for k, v := range set {
		if v == nil {
			delete(env, k)
			continue
		}
		env[k] = json.RawMessage(*v)
	}
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	return raw
}

func evStr(s string) *string { return &s }

// requireInvalid asserts err is an EINVALID *domain.Error whose message
// contains every one of wants (the message becomes a dead-letter reason).
func requireInvalid(t *testing.T, err error, wants ...string) {
	t.Helper()
	require.Error(t, err)
	var de *domain.Error
	require.True(t, errors.As(err, &de), "error %v (%T) is not a *domain.Error", err, err)
	require.Equal(t, domain.EINVALID, de.Code)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	for _, w := range wants {
		require.Contains(t, de.Message, w, "message %q should name the problem", de.Message)
	}
}

func TestEventTypes(t *testing.T) {
	t.Parallel()
	require.Len(t, domain.EventTypes, 15)
	seen := map[string]bool{}
	for _, typ := range domain.EventTypes {
		require.False(t, seen[typ], "duplicate event type %q", typ)
		seen[typ] = true
	}
	// Every type has a valid example, in the same order, and it decodes.
	examples := evExamples()
	require.Len(t, examples, len(domain.EventTypes))
	for i, ex := range examples {
		require.Equal(t, domain.EventTypes[i], ex.typ)
		_, err := domain.DecodeEvent(evRaw(t, ex.typ, ex.data, nil))
		require.NoError(t, err, ex.typ)
	}
}

func TestSubject(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, want string }{
		{domain.TypeShiftCreated, "marketplace.shift.created"},
		{domain.TypeWorkerDocumentAdded, "marketplace.worker.document_added"},
		{domain.TypeFacilityRequirementRemoved, "marketplace.facility.requirement_removed"},
		{domain.TypeDocumentCreated, "marketplace.document.created"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, domain.Subject(tt.typ))
		})
	}
	for _, typ := range domain.EventTypes {
		require.Equal(t, domain.SubjectPrefix+typ, domain.Subject(typ))
		require.True(t, strings.HasPrefix(domain.Subject(typ), "marketplace."))
	}
}

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	for _, ex := range evExamples() {
		t.Run(ex.typ, func(t *testing.T) {
			t.Parallel()
			got, err := domain.DecodeEvent(evRaw(t, ex.typ, ex.data, nil))
			require.NoError(t, err)
			require.Equal(t, "1.0", got.SpecVersion)
			require.Equal(t, "evt-0001", got.ID)
			require.Equal(t, "/marketplace/tests", got.Source)
			require.Equal(t, ex.typ, got.Type)
			require.Equal(t, "application/json", got.DataContentType)
			require.True(t, got.Time.Equal(evTimeUTC), "time %s", got.Time)
			require.Equal(t, time.UTC, got.Time.Location())
			require.IsType(t, ex.want, got.Data)
			require.Equal(t, ex.want, got.Data)
		})
	}
}

func TestDecodeEvent_Fields(t *testing.T) {
	t.Parallel()
	// Spot checks through the typed payloads, beyond whole-value equality.
	decode := func(t *testing.T, typ, data string) any {
		t.Helper()
		e, err := domain.DecodeEvent(evRaw(t, typ, data, nil))
		require.NoError(t, err)
		return e.Data
	}
	t.Run("shift.created times are UTC", func(t *testing.T) {
		t.Parallel()
		d := decode(t, domain.TypeShiftCreated, `{"id":1,"facility_id":2,"profession":"LVN","start":"2024-06-01T23:00:00+09:30","end":"2024-06-02T01:00:00+09:30"}`).(*domain.ShiftCreated)
		require.Equal(t, domain.LVN, d.Profession)
		require.Equal(t, time.UTC, d.Start.Location())
		require.Equal(t, time.UTC, d.End.Location())
		require.Equal(t, time.Date(2024, 6, 1, 13, 30, 0, 0, time.UTC), d.Start)
		require.Equal(t, time.Date(2024, 6, 1, 15, 30, 0, 0, time.UTC), d.End)
	})
	t.Run("fractional seconds kept", func(t *testing.T) {
		t.Parallel()
		d := decode(t, domain.TypeShiftCreated, `{"id":1,"facility_id":2,"profession":"CNA","start":"2024-06-01T10:00:00.123456789Z","end":"2024-06-01T10:00:00.123456790Z"}`).(*domain.ShiftCreated)
		require.Equal(t, 123456789, d.Start.Nanosecond())
		require.Equal(t, time.Nanosecond, d.End.Sub(d.Start))
	})
	t.Run("largest 32-bit ids accepted", func(t *testing.T) {
		t.Parallel()
		d := decode(t, domain.TypeWorkerDocumentAdded, `{"worker_id":2147483647,"document_id":1}`).(*domain.WorkerDocument)
		require.Equal(t, int64(1<<31-1), d.WorkerID)
		require.Equal(t, int64(1), d.DocumentID)
	})
	t.Run("inactive worker", func(t *testing.T) {
		t.Parallel()
		d := decode(t, domain.TypeWorkerCreated, `{"is_active":false,"profession":"RN","name":"Bo","id":5}`).(*domain.WorkerCreated)
		require.False(t, d.IsActive)
		require.Equal(t, "Bo", d.Name)
		require.Equal(t, domain.RN, d.Profession)
	})
	t.Run("datacontenttype may be omitted", func(t *testing.T) {
		t.Parallel()
		e, err := domain.DecodeEvent(evRaw(t, domain.TypeShiftDeleted, `{"shift_id":4}`, map[string]*string{"datacontenttype": nil}))
		require.NoError(t, err)
		require.Empty(t, e.DataContentType)
		require.Equal(t, &domain.ShiftRef{ShiftID: 4}, e.Data)
	})
	t.Run("extension attributes are ignored", func(t *testing.T) {
		t.Parallel()
		e, err := domain.DecodeEvent(evRaw(t, domain.TypeShiftDeleted, `{"shift_id":4}`, map[string]*string{"traceparent": evStr(`"00-abc-def-01"`)}))
		require.NoError(t, err)
		require.Equal(t, &domain.ShiftRef{ShiftID: 4}, e.Data)
	})
	t.Run("id of 256 characters accepted", func(t *testing.T) {
		t.Parallel()
		id := strings.Repeat("a", 256)
		e, err := domain.DecodeEvent(evRaw(t, domain.TypeShiftDeleted, `{"shift_id":4}`, map[string]*string{"id": evStr(`"` + id + `"`)}))
		require.NoError(t, err)
		require.Equal(t, id, e.ID)
	})
}

func TestDecodeEvent_EnvelopeErrors(t *testing.T) {
	t.Parallel()
	const data = `{"shift_id":1}`
	typ := domain.TypeShiftReleased
	set := func(kv ...string) map[string]*string {
		m := map[string]*string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = evStr(kv[i+1])
		}
		return m
	}
	del := func(k string) map[string]*string { return map[string]*string{k: nil} }
	tests := []struct {
		name  string
		raw   []byte
		wants []string
	}{
		{name: "not JSON", raw: []byte(`not json`), wants: []string{"JSON object"}},
		{name: "truncated JSON", raw: evRaw(t, typ, data, nil)[:40], wants: []string{"JSON object"}},
		{name: "empty input", raw: []byte(``), wants: []string{"JSON object"}},
		{name: "JSON array", raw: []byte(`[` + string(evRaw(t, typ, data, nil)) + `]`), wants: []string{"JSON object", "array"}},
		{name: "JSON string", raw: []byte(`"shift.released"`), wants: []string{"JSON object"}},
		{name: "JSON null", raw: []byte(`null`), wants: []string{}},
		{name: "specversion missing", raw: evRaw(t, typ, data, del("specversion")), wants: []string{"specversion", `"1.0"`}},
		{name: "specversion 0.3", raw: evRaw(t, typ, data, set("specversion", `"0.3"`)), wants: []string{"specversion", `"0.3"`}},
		{name: "specversion a number", raw: evRaw(t, typ, data, set("specversion", `1.0`)), wants: []string{"specversion"}},
		{name: "id missing", raw: evRaw(t, typ, data, del("id")), wants: []string{"id is missing"}},
		{name: "id empty", raw: evRaw(t, typ, data, set("id", `""`)), wants: []string{"id is missing"}},
		{name: "id too long", raw: evRaw(t, typ, data, set("id", `"`+strings.Repeat("x", 257)+`"`)), wants: []string{"id", "longer than 256"}},
		{name: "id a number", raw: evRaw(t, typ, data, set("id", `42`)), wants: []string{"id"}},
		{name: "source missing", raw: evRaw(t, typ, data, del("source")), wants: []string{"source is missing"}},
		{name: "source empty", raw: evRaw(t, typ, data, set("source", `""`)), wants: []string{"source is missing"}},
		{name: "time missing", raw: evRaw(t, typ, data, del("time")), wants: []string{"time is missing"}},
		{name: "time null", raw: evRaw(t, typ, data, set("time", `null`)), wants: []string{"time is missing"}},
		{name: "time not RFC 3339", raw: evRaw(t, typ, data, set("time", `"yesterday"`)), wants: []string{"time", "yesterday"}},
		{name: "time without T", raw: evRaw(t, typ, data, set("time", `"2024-03-01 12:00:00Z"`)), wants: []string{"time", "2024-03-01 12:00:00Z"}},
		{name: "time without zone", raw: evRaw(t, typ, data, set("time", `"2024-03-01T12:00:00"`)), wants: []string{"time", "2024-03-01T12:00:00"}},
		{name: "datacontenttype text/plain", raw: evRaw(t, typ, data, set("datacontenttype", `"text/plain"`)), wants: []string{"datacontenttype", "application/json", `"text/plain"`}},
		{name: "datacontenttype xml", raw: evRaw(t, typ, data, set("datacontenttype", `"application/xml"`)), wants: []string{"datacontenttype", `"application/xml"`}},
		{name: "type missing", raw: evRaw(t, typ, data, del("type")), wants: []string{"unknown event type", `""`}},
		{name: "unknown type", raw: evRaw(t, "shift.exploded", data, nil), wants: []string{"unknown event type", `"shift.exploded"`}},
		{name: "type with subject prefix", raw: evRaw(t, "marketplace.shift.released", data, nil), wants: []string{"unknown event type", `"marketplace.shift.released"`}},
		{name: "data missing", raw: evRaw(t, typ, data, del("data")), wants: []string{"shift.released data", "missing"}},
		{name: "data null", raw: evRaw(t, typ, `null`, nil), wants: []string{"shift.released data", "missing"}},
		{name: "data a string", raw: evRaw(t, typ, `"{\"shift_id\":1}"`, nil), wants: []string{"shift.released data", "not a JSON object"}},
		{name: "data an array", raw: evRaw(t, typ, `[{"shift_id":1}]`, nil), wants: []string{"shift.released data", "not a JSON object"}},
		{name: "data a number", raw: evRaw(t, typ, `1`, nil), wants: []string{"shift.released data", "not a JSON object"}},
		{name: "data empty object", raw: evRaw(t, typ, `{}`, nil), wants: []string{"shift.released data", `field "shift_id" is missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := domain.DecodeEvent(tt.raw)
			requireInvalid(t, err, tt.wants...)
			require.Equal(t, domain.Event{}, e)
		})
	}
}

func TestDecodeEvent_DataErrors(t *testing.T) {
	t.Parallel()
	const (
		start = `"2024-03-10T08:00:00Z"`
		end   = `"2024-03-10T16:00:00Z"`
	)
	shift := func(fields map[string]string) string {
		base := map[string]string{"id": `11`, "facility_id": `3`, "profession": `"RN"`, "start": start, "end": end}
		for k, v := range fields {
			if v == "" {
				delete(base, k)
			} else {
				base[k] = v
			}
		}
		return evObject(base)
	}
	tests := []struct {
		name  string
		typ   string
		data  string
		wants []string
	}{
		// shift.created: each required field missing, or null.
		{name: "shift.created without id", typ: domain.TypeShiftCreated, data: shift(map[string]string{"id": ""}), wants: []string{`field "id" is missing`}},
		{name: "shift.created without facility_id", typ: domain.TypeShiftCreated, data: shift(map[string]string{"facility_id": ""}), wants: []string{`field "facility_id" is missing`}},
		{name: "shift.created without profession", typ: domain.TypeShiftCreated, data: shift(map[string]string{"profession": ""}), wants: []string{`field "profession" is missing`}},
		{name: "shift.created without start", typ: domain.TypeShiftCreated, data: shift(map[string]string{"start": ""}), wants: []string{`field "start" is missing`}},
		{name: "shift.created without end", typ: domain.TypeShiftCreated, data: shift(map[string]string{"end": ""}), wants: []string{`field "end" is missing`}},
		{name: "shift.created with null end", typ: domain.TypeShiftCreated, data: shift(map[string]string{"end": "null"}), wants: []string{`field "end" is missing`}},
		{name: "shift.created with null id", typ: domain.TypeShiftCreated, data: shift(map[string]string{"id": "null"}), wants: []string{`field "id" is missing`}},
		// Other types' required fields.
		{name: "shift.claimed without worker_id", typ: domain.TypeShiftClaimed, data: `{"shift_id":1}`, wants: []string{`field "worker_id" is missing`}},
		{name: "worker.created without is_active", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"A","profession":"RN"}`, wants: []string{`field "is_active" is missing`}},
		{name: "facility.created without name", typ: domain.TypeFacilityCreated, data: `{"id":1,"is_active":true}`, wants: []string{`field "name" is missing`}},
		{name: "facility.requirement_added without document_id", typ: domain.TypeFacilityRequirementAdded, data: `{"facility_id":1}`, wants: []string{`field "document_id" is missing`}},
		{name: "payload of another type", typ: domain.TypeWorkerActivated, data: `{"facility_id":1}`, wants: []string{"worker.activated data", `field "worker_id" is missing`}},
		// Unknown extra fields.
		{name: "shift.created with extra field", typ: domain.TypeShiftCreated, data: shift(map[string]string{"worker_id": `5`}), wants: []string{"unknown field", `"worker_id"`}},
		{name: "shift.released with extra field", typ: domain.TypeShiftReleased, data: `{"shift_id":1,"reason":"cancelled"}`, wants: []string{"unknown field", `"reason"`}},
		{name: "document.created with extra field", typ: domain.TypeDocumentCreated, data: `{"id":1,"name":"BLS","is_active":true,"expires":"2025-01-01"}`, wants: []string{"unknown field", `"expires"`}},
		// Wrong JSON types.
		{name: "string id", typ: domain.TypeShiftCreated, data: shift(map[string]string{"id": `"11"`}), wants: []string{`field "id"`, "integer", "string"}},
		{name: "string shift_id", typ: domain.TypeShiftClaimed, data: `{"shift_id":"1","worker_id":2}`, wants: []string{`field "shift_id"`, "integer", "string"}},
		{name: "fractional worker_id", typ: domain.TypeWorkerActivated, data: `{"worker_id":1.5}`, wants: []string{`field "worker_id"`, "integer", "1.5"}},
		{name: "huge document_id", typ: domain.TypeWorkerDocumentAdded, data: `{"worker_id":1,"document_id":1e30}`, wants: []string{`field "document_id"`, "integer"}},
		{name: "boolean facility_id", typ: domain.TypeFacilityActivated, data: `{"facility_id":true}`, wants: []string{`field "facility_id"`, "integer", "bool"}},
		{name: "number profession", typ: domain.TypeShiftCreated, data: shift(map[string]string{"profession": `3`}), wants: []string{`field "profession"`, "string", "number"}},
		{name: "number profession on worker", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"A","profession":2,"is_active":true}`, wants: []string{`field "profession"`, "string", "number"}},
		{name: "string is_active", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"A","profession":"RN","is_active":"true"}`, wants: []string{`field "is_active"`, "boolean", "string"}},
		{name: "number is_active", typ: domain.TypeFacilityCreated, data: `{"id":1,"name":"A","is_active":1}`, wants: []string{`field "is_active"`, "boolean", "number"}},
		{name: "number name", typ: domain.TypeDocumentCreated, data: `{"id":1,"name":7,"is_active":true}`, wants: []string{`field "name"`, "string", "number"}},
		{name: "object name", typ: domain.TypeFacilityCreated, data: `{"id":1,"name":{"en":"A"},"is_active":true}`, wants: []string{`field "name"`, "string", "object"}},
		{name: "start not RFC 3339", typ: domain.TypeShiftCreated, data: shift(map[string]string{"start": `"tomorrow"`}), wants: []string{"tomorrow"}},
		// Unknown professions.
		{name: "profession MD", typ: domain.TypeShiftCreated, data: shift(map[string]string{"profession": `"MD"`}), wants: []string{"unknown profession", `"MD"`}},
		{name: "profession MD on worker", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"A","profession":"MD","is_active":true}`, wants: []string{"unknown profession", `"MD"`}},
		{name: "profession lower case", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"A","profession":"rn","is_active":true}`, wants: []string{"unknown profession", `"rn"`}},
		{name: "profession empty", typ: domain.TypeShiftCreated, data: shift(map[string]string{"profession": `""`}), wants: []string{"unknown profession", `""`}},
		// Shift times.
		{name: "end before start", typ: domain.TypeShiftCreated, data: shift(map[string]string{"end": `"2024-03-10T07:00:00Z"`}), wants: []string{"end", "not after start", "2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z"}},
		{name: "end equals start", typ: domain.TypeShiftCreated, data: shift(map[string]string{"end": start}), wants: []string{"end", "not after start"}},
		{name: "end equals start in another zone", typ: domain.TypeShiftCreated, data: shift(map[string]string{"end": `"2024-03-10T03:00:00-05:00"`}), wants: []string{"not after start"}},
		// Non-positive and too large ids.
		{name: "zero id", typ: domain.TypeShiftCreated, data: shift(map[string]string{"id": `0`}), wants: []string{"id must be a positive", "got 0"}},
		{name: "negative facility_id", typ: domain.TypeShiftCreated, data: shift(map[string]string{"facility_id": `-3`}), wants: []string{"facility_id must be a positive", "got -3"}},
		{name: "facility_id above 2^31-1", typ: domain.TypeShiftCreated, data: shift(map[string]string{"facility_id": `2147483648`}), wants: []string{"facility_id", "got 2147483648"}},
		{name: "zero shift_id claimed", typ: domain.TypeShiftClaimed, data: `{"shift_id":0,"worker_id":2}`, wants: []string{"shift_id", "got 0"}},
		{name: "negative worker_id claimed", typ: domain.TypeShiftClaimed, data: `{"shift_id":1,"worker_id":-1}`, wants: []string{"worker_id", "got -1"}},
		{name: "shift_id above 2^31-1 released", typ: domain.TypeShiftReleased, data: `{"shift_id":2147483648}`, wants: []string{"shift_id", "got 2147483648"}},
		{name: "max int64 shift_id deleted", typ: domain.TypeShiftDeleted, data: `{"shift_id":9223372036854775807}`, wants: []string{"shift_id", "got 9223372036854775807"}},
		{name: "zero worker id", typ: domain.TypeWorkerCreated, data: `{"id":0,"name":"A","profession":"RN","is_active":true}`, wants: []string{"id", "got 0"}},
		{name: "negative worker_id activated", typ: domain.TypeWorkerActivated, data: `{"worker_id":-7}`, wants: []string{"worker_id", "got -7"}},
		{name: "zero worker_id deactivated", typ: domain.TypeWorkerDeactivated, data: `{"worker_id":0}`, wants: []string{"worker_id", "got 0"}},
		{name: "zero document_id added", typ: domain.TypeWorkerDocumentAdded, data: `{"worker_id":1,"document_id":0}`, wants: []string{"document_id", "got 0"}},
		{name: "worker_id above 2^31-1 removed", typ: domain.TypeWorkerDocumentRemoved, data: `{"worker_id":4294967296,"document_id":1}`, wants: []string{"worker_id", "got 4294967296"}},
		{name: "zero facility id", typ: domain.TypeFacilityCreated, data: `{"id":0,"name":"A","is_active":true}`, wants: []string{"id", "got 0"}},
		{name: "negative facility_id activated", typ: domain.TypeFacilityActivated, data: `{"facility_id":-1}`, wants: []string{"facility_id", "got -1"}},
		{name: "facility_id above 2^31-1 deactivated", typ: domain.TypeFacilityDeactivated, data: `{"facility_id":2147483648}`, wants: []string{"facility_id", "got 2147483648"}},
		{name: "zero document_id required", typ: domain.TypeFacilityRequirementAdded, data: `{"facility_id":1,"document_id":0}`, wants: []string{"document_id", "got 0"}},
		{name: "document_id above 2^31-1 unrequired", typ: domain.TypeFacilityRequirementRemoved, data: `{"facility_id":1,"document_id":2147483648}`, wants: []string{"document_id", "got 2147483648"}},
		{name: "negative document id", typ: domain.TypeDocumentCreated, data: `{"id":-2,"name":"BLS","is_active":true}`, wants: []string{"id", "got -2"}},
		// Empty and blank names.
		{name: "worker empty name", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"","profession":"RN","is_active":true}`, wants: []string{"name is empty"}},
		{name: "worker blank name", typ: domain.TypeWorkerCreated, data: `{"id":1,"name":"  \t\n","profession":"RN","is_active":true}`, wants: []string{"name is empty"}},
		{name: "facility empty name", typ: domain.TypeFacilityCreated, data: `{"id":1,"name":"","is_active":true}`, wants: []string{"name is empty"}},
		{name: "facility blank name", typ: domain.TypeFacilityCreated, data: `{"id":1,"name":"   ","is_active":false}`, wants: []string{"name is empty"}},
		{name: "document empty name", typ: domain.TypeDocumentCreated, data: `{"id":1,"name":"","is_active":true}`, wants: []string{"name is empty"}},
		{name: "document blank name", typ: domain.TypeDocumentCreated, data: `{"id":1,"name":" ","is_active":true}`, wants: []string{"name is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := domain.DecodeEvent(evRaw(t, tt.typ, tt.data, nil))
			// Every data error says which event type's data is at fault.
			requireInvalid(t, err, append([]string{tt.typ + " data: "}, tt.wants...)...)
			require.Equal(t, domain.Event{}, e)
		})
	}
}

// evObject renders fields (values are raw JSON) as a JSON object.
func evObject(fields map[string]string) string {
	m := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		m[k] = json.RawMessage(v)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestNewEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 3, 1, 7, 30, 0, 250, time.FixedZone("EST", -5*3600))
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		typ  string
		data any
		want any
	}{
		{
			typ:  domain.TypeShiftCreated,
			data: domain.ShiftCreated{ID: 1, FacilityID: 2, Profession: domain.RN, Start: time.Date(2024, 4, 1, 8, 0, 0, 0, est), End: time.Date(2024, 4, 1, 16, 0, 0, 0, est)},
			want: &domain.ShiftCreated{ID: 1, FacilityID: 2, Profession: domain.RN, Start: time.Date(2024, 4, 1, 13, 0, 0, 0, time.UTC), End: time.Date(2024, 4, 1, 21, 0, 0, 0, time.UTC)},
		},
		{typ: domain.TypeShiftClaimed, data: &domain.ShiftClaimed{ShiftID: 1, WorkerID: 2}, want: &domain.ShiftClaimed{ShiftID: 1, WorkerID: 2}},
		{typ: domain.TypeShiftReleased, data: domain.ShiftRef{ShiftID: 3}, want: &domain.ShiftRef{ShiftID: 3}},
		{typ: domain.TypeShiftDeleted, data: domain.ShiftRef{ShiftID: 4}, want: &domain.ShiftRef{ShiftID: 4}},
		{typ: domain.TypeWorkerCreated, data: domain.WorkerCreated{ID: 5, Name: "Bo", Profession: domain.LVN, IsActive: true}, want: &domain.WorkerCreated{ID: 5, Name: "Bo", Profession: domain.LVN, IsActive: true}},
		{typ: domain.TypeWorkerActivated, data: domain.WorkerRef{WorkerID: 5}, want: &domain.WorkerRef{WorkerID: 5}},
		{typ: domain.TypeWorkerDeactivated, data: domain.WorkerRef{WorkerID: 6}, want: &domain.WorkerRef{WorkerID: 6}},
		{typ: domain.TypeWorkerDocumentAdded, data: domain.WorkerDocument{WorkerID: 5, DocumentID: 9}, want: &domain.WorkerDocument{WorkerID: 5, DocumentID: 9}},
		{typ: domain.TypeWorkerDocumentRemoved, data: domain.WorkerDocument{WorkerID: 5, DocumentID: 8}, want: &domain.WorkerDocument{WorkerID: 5, DocumentID: 8}},
		{typ: domain.TypeFacilityCreated, data: domain.FacilityCreated{ID: 7, Name: "Mercy", IsActive: false}, want: &domain.FacilityCreated{ID: 7, Name: "Mercy", IsActive: false}},
		{typ: domain.TypeFacilityActivated, data: domain.FacilityRef{FacilityID: 7}, want: &domain.FacilityRef{FacilityID: 7}},
		{typ: domain.TypeFacilityDeactivated, data: domain.FacilityRef{FacilityID: 8}, want: &domain.FacilityRef{FacilityID: 8}},
		{typ: domain.TypeFacilityRequirementAdded, data: domain.FacilityRequirement{FacilityID: 7, DocumentID: 9}, want: &domain.FacilityRequirement{FacilityID: 7, DocumentID: 9}},
		{typ: domain.TypeFacilityRequirementRemoved, data: domain.FacilityRequirement{FacilityID: 7, DocumentID: 1}, want: &domain.FacilityRequirement{FacilityID: 7, DocumentID: 1}},
		{typ: domain.TypeDocumentCreated, data: domain.DocumentCreated{ID: 9, Name: "TB test", IsActive: true}, want: &domain.DocumentCreated{ID: 9, Name: "TB test", IsActive: true}},
	}
	require.Len(t, tests, len(domain.EventTypes))
	for i, tt := range tests {
		require.Equal(t, domain.EventTypes[i], tt.typ)
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			e, err := domain.NewEvent("id-"+tt.typ, "/shiftcast/test", tt.typ, at, tt.data)
			require.NoError(t, err)
			require.Equal(t, "1.0", e.SpecVersion)
			require.Equal(t, "id-"+tt.typ, e.ID)
			require.Equal(t, "/shiftcast/test", e.Source)
			require.Equal(t, tt.typ, e.Type)
			require.Equal(t, "application/json", e.DataContentType)
			require.Equal(t, time.UTC, e.Time.Location())
			require.True(t, e.Time.Equal(at), "time %s", e.Time)
			require.Equal(t, tt.want, e.Data)

			// Round trip: what NewEvent builds is what DecodeEvent reads back.
			raw, err := json.Marshal(e)
			require.NoError(t, err)
			got, err := domain.DecodeEvent(raw)
			require.NoError(t, err)
			require.Equal(t, e, got)

			// And the wire form is a plain structured CloudEvent.
			var wire map[string]any
			require.NoError(t, json.Unmarshal(raw, &wire))
			require.Equal(t, "1.0", wire["specversion"])
			require.Equal(t, tt.typ, wire["type"])
			require.Equal(t, "2024-03-01T12:30:00.00000025Z", wire["time"])
			require.IsType(t, map[string]any{}, wire["data"])
		})
	}
}

func TestNewEvent_Rejects(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	start := time.Date(2024, 4, 1, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		id     string
		source string
		typ    string
		at     time.Time
		data   any
		wants  []string
	}{
		{name: "zero shift id", typ: domain.TypeShiftReleased, data: domain.ShiftRef{}, wants: []string{"shift_id", "got 0"}},
		{name: "id above 2^31-1", typ: domain.TypeWorkerActivated, data: domain.WorkerRef{WorkerID: 1 << 31}, wants: []string{"worker_id", "got 2147483648"}},
		{name: "unknown profession", typ: domain.TypeShiftCreated, data: domain.ShiftCreated{ID: 1, FacilityID: 1, Profession: "MD", Start: start, End: start.Add(time.Hour)}, wants: []string{"unknown profession", `"MD"`}},
		{name: "end before start", typ: domain.TypeShiftCreated, data: domain.ShiftCreated{ID: 1, FacilityID: 1, Profession: domain.CNA, Start: start, End: start.Add(-time.Hour)}, wants: []string{"not after start"}},
		{name: "end equals start", typ: domain.TypeShiftCreated, data: domain.ShiftCreated{ID: 1, FacilityID: 1, Profession: domain.CNA, Start: start, End: start}, wants: []string{"not after start"}},
		{name: "blank name", typ: domain.TypeFacilityCreated, data: domain.FacilityCreated{ID: 1, Name: " "}, wants: []string{"name is empty"}},
		{name: "payload of another type", typ: domain.TypeShiftClaimed, data: domain.ShiftRef{ShiftID: 1}, wants: []string{"shift.claimed data", `field "worker_id" is missing`}},
		{name: "payload with extra fields", typ: domain.TypeShiftReleased, data: domain.ShiftClaimed{ShiftID: 1, WorkerID: 2}, wants: []string{"unknown field", `"worker_id"`}},
		{name: "nil data", typ: domain.TypeShiftReleased, data: nil, wants: []string{"shift.released data", "missing"}},
		{name: "data not an object", typ: domain.TypeShiftReleased, data: 42, wants: []string{"not a JSON object"}},
		{name: "unknown type", typ: "shift.exploded", data: domain.ShiftRef{ShiftID: 1}, wants: []string{"unknown event type", `"shift.exploded"`}},
		{name: "empty id", id: "-", typ: domain.TypeShiftReleased, data: domain.ShiftRef{ShiftID: 1}, wants: []string{"id is missing"}},
		{name: "empty source", source: "-", typ: domain.TypeShiftReleased, data: domain.ShiftRef{ShiftID: 1}, wants: []string{"source is missing"}},
		{name: "unencodable data", typ: domain.TypeShiftReleased, data: map[string]any{"shift_id": make(chan int)}, wants: []string{"encode shift.released event"}},
		{name: "time past year 9999", typ: domain.TypeShiftReleased, at: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), data: domain.ShiftRef{ShiftID: 1}, wants: []string{"encode shift.released event"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, source, when := "evt-1", "/test", at
			if tt.id == "-" {
				id = ""
			}
			if tt.source == "-" {
				source = ""
			}
			if !tt.at.IsZero() {
				when = tt.at
			}
			e, err := domain.NewEvent(id, source, tt.typ, when, tt.data)
			requireInvalid(t, err, tt.wants...)
			require.Equal(t, domain.Event{}, e)
		})
	}
}

// The tests below pin down behaviour that events.go gets wrong at the time
// of writing (see the report that came with this file); they fail until
// events.go is fixed.

// TestDecodeEvent_AcceptedTimesReencode: an accepted event must survive
// json.Marshal (the consumer copies events to the dead-letter stream and
// `shiftcast replay` re-publishes them). A time within RFC 3339's year range
// whose UTC form is not (year 0 with a positive offset, year 9999 with a
// negative one) must be rejected, not accepted and then unencodable.
func TestDecodeEvent_AcceptedTimesReencode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  []byte
	}{
		{name: "envelope time before year 0 in UTC", raw: evRaw(t, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"time": evStr(`"0000-01-01T00:00:00+01:00"`)})},
		{name: "envelope time after year 9999 in UTC", raw: evRaw(t, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"time": evStr(`"9999-12-31T23:30:00-01:00"`)})},
		{name: "shift end after year 9999 in UTC", raw: evRaw(t, domain.TypeShiftCreated, `{"id":1,"facility_id":2,"profession":"RN","start":"9999-12-31T20:00:00-05:00","end":"9999-12-31T22:00:00-05:00"}`, nil)},
		{name: "shift start before year 0 in UTC", raw: evRaw(t, domain.TypeShiftCreated, `{"id":1,"facility_id":2,"profession":"RN","start":"0000-01-01T00:00:00+05:00","end":"0000-01-01T08:00:00+05:00"}`, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := domain.DecodeEvent(tt.raw)
			if err != nil {
				requireInvalid(t, err)
				return
			}
			_, err = json.Marshal(e)
			require.NoError(t, err, "DecodeEvent accepted an event that cannot be re-encoded")
		})
	}
}

// TestDecodeEvent_TimeErrorsNameTheField: a malformed time must be reported
// with the attribute or field it is in, as every other field error is.
func TestDecodeEvent_TimeErrorsNameTheField(t *testing.T) {
	t.Parallel()
	shift := `{"id":1,"facility_id":2,"profession":"RN","start":%s,"end":"2024-03-10T16:00:00Z"}`
	tests := []struct {
		name  string
		raw   []byte
		wants []string
	}{
		{name: "start a number", raw: evRaw(t, domain.TypeShiftCreated, strings.Replace(shift, "%s", `1710057600`, 1), nil), wants: []string{`"start"`, "1710057600"}},
		{name: "start not RFC 3339", raw: evRaw(t, domain.TypeShiftCreated, strings.Replace(shift, "%s", `"tomorrow"`, 1), nil), wants: []string{`"start"`, "tomorrow"}},
		{name: "end a boolean", raw: evRaw(t, domain.TypeShiftCreated, `{"id":1,"facility_id":2,"profession":"RN","start":"2024-03-10T08:00:00Z","end":true}`, nil), wants: []string{`"end"`, "true"}},
		{name: "envelope time a number", raw: evRaw(t, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"time": evStr(`1709294400`)}), wants: []string{"time", "1709294400"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.DecodeEvent(tt.raw)
			requireInvalid(t, err, tt.wants...)
		})
	}
}

// TestDecodeEvent_TimeIsStrictRFC3339: time.Time's JSON decoding accepts a
// few forms RFC 3339 does not (one-digit hour, offset hour 24, comma before
// the fraction); the contract says RFC 3339.
func TestDecodeEvent_TimeIsStrictRFC3339(t *testing.T) {
	t.Parallel()
	for _, tm := range []string{"2024-03-01T1:00:00Z", "2024-03-01T01:00:00+24:00", "2024-03-01T01:00:00,5Z"} {
		t.Run(tm, func(t *testing.T) {
			t.Parallel()
			_, err := domain.DecodeEvent(evRaw(t, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"time": evStr(`"` + tm + `"`)}))
			requireInvalid(t, err, "time", tm)
		})
	}
}

// TestDecodeEvent_FieldNamesAreExact: CloudEvents attribute names are
// lower case and payload field names are exactly those of the table;
// encoding/json's case-insensitive matching must not let "SHIFT_ID" stand
// in for (or silently override) "shift_id".
func TestDecodeEvent_FieldNamesAreExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		raw   []byte
		wants []string
	}{
		{name: "data key differing in case overrides", raw: evRaw(t, domain.TypeShiftClaimed, `{"shift_id":1,"worker_id":2,"SHIFT_ID":7}`, nil), wants: []string{"unknown field", `"SHIFT_ID"`}},
		{name: "data key differing in case alongside", raw: evRaw(t, domain.TypeWorkerCreated, `{"id":1,"name":"A","profession":"RN","is_active":true,"Is_Active":false}`, nil), wants: []string{"unknown field", `"Is_Active"`}},
		{name: "envelope attribute differing in case overrides", raw: evAppend(evRaw(t, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"specversion": evStr(`"0.3"`)}), `"SpecVersion":"1.0"`), wants: []string{"SpecVersion"}},
		{name: "envelope type differing in case overrides", raw: evAppend(evRaw(t, domain.TypeShiftDeleted, `{"shift_id":1}`, nil), `"TYPE":"shift.released"`), wants: []string{"TYPE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := domain.DecodeEvent(tt.raw)
			requireInvalid(t, err, tt.wants...)
			require.Equal(t, domain.Event{}, e)
		})
	}
}

// evAppend adds member (raw JSON "key":value) at the end of the JSON object raw.
func evAppend(raw []byte, member string) []byte {
	return append(append(raw[:len(raw)-1:len(raw)-1], ","+member...), '}')
}

func FuzzDecodeEvent(f *testing.F) {
	for _, ex := range evExamples() {
		f.Add(evRaw(f, ex.typ, ex.data, nil))
		f.Add(evRaw(f, ex.typ, ex.data, map[string]*string{"datacontenttype": nil, "time": evStr(`"2024-03-01T12:00:00.5Z"`)}))
	}
	f.Add([]byte(``))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"specversion":"1.0"`))
	f.Add(evRaw(f, "shift.exploded", `{"shift_id":1}`, nil))
	f.Add(evRaw(f, domain.TypeShiftReleased, `null`, nil))
	f.Add(evRaw(f, domain.TypeShiftReleased, `{"shift_id":"1"}`, nil))
	f.Add(evRaw(f, domain.TypeShiftReleased, `{"shift_id":1,"x":2}`, nil))
	f.Add(evRaw(f, domain.TypeShiftCreated, `{"id":1,"facility_id":2,"profession":"MD","start":"2024-01-01T00:00:00Z","end":"2023-01-01T00:00:00Z"}`, nil))
	f.Add(evRaw(f, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"time": evStr(`"2024-13-01T00:00:00Z"`)}))
	f.Add(evRaw(f, domain.TypeShiftDeleted, `{"shift_id":1}`, map[string]*string{"specversion": evStr(`"0.3"`)}))

	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := domain.DecodeEvent(raw)
		if err != nil {
			var de *domain.Error
			require.True(t, errors.As(err, &de), "error %v (%T) is not a *domain.Error", err, err)
			require.Equal(t, domain.EINVALID, de.Code)
			require.NotEmpty(t, de.Message)
			require.Equal(t, domain.Event{}, e)
			return
		}
		require.Contains(t, domain.EventTypes, e.Type)
		require.NotNil(t, e.Data)
		again, err := json.Marshal(e)
		require.NoError(t, err, "accepted event does not re-encode")
		e2, err := domain.DecodeEvent(again)
		require.NoError(t, err, "re-encoded event %s is rejected", again)
		require.Equal(t, e.Type, e2.Type)
		require.Equal(t, e.ID, e2.ID)
		require.Equal(t, e, e2)
	})
}
