package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Event types: the marketplace's domain events, one NATS subject each
// (marketplace.<type>).
const (
	TypeShiftCreated               = "shift.created"
	TypeShiftClaimed               = "shift.claimed"
	TypeShiftReleased              = "shift.released"
	TypeShiftDeleted               = "shift.deleted"
	TypeWorkerCreated              = "worker.created"
	TypeWorkerActivated            = "worker.activated"
	TypeWorkerDeactivated          = "worker.deactivated"
	TypeWorkerDocumentAdded        = "worker.document_added"
	TypeWorkerDocumentRemoved      = "worker.document_removed"
	TypeFacilityCreated            = "facility.created"
	TypeFacilityActivated          = "facility.activated"
	TypeFacilityDeactivated        = "facility.deactivated"
	TypeFacilityRequirementAdded   = "facility.requirement_added"
	TypeFacilityRequirementRemoved = "facility.requirement_removed"
	TypeDocumentCreated            = "document.created"
)

// Event payloads, one type per event type. Every field is required.
type (
	// ShiftCreated is the data of shift.created.
	ShiftCreated struct {
		ID         int64      `json:"id"`
		FacilityID int64      `json:"facility_id"`
		Profession Profession `json:"profession"`
		Start      time.Time  `json:"start"`
		End        time.Time  `json:"end"`
	}
	// ShiftClaimed is the data of shift.claimed.
	ShiftClaimed struct {
		ShiftID  int64 `json:"shift_id"`
		WorkerID int64 `json:"worker_id"`
	}
	// ShiftRef is the data of shift.released and shift.deleted.
	ShiftRef struct {
		ShiftID int64 `json:"shift_id"`
	}
	// WorkerCreated is the data of worker.created.
	WorkerCreated struct {
		ID         int64      `json:"id"`
		Name       string     `json:"name"`
		Profession Profession `json:"profession"`
		IsActive   bool       `json:"is_active"`
	}
	// WorkerRef is the data of worker.activated and worker.deactivated.
	WorkerRef struct {
		WorkerID int64 `json:"worker_id"`
	}
	// WorkerDocument is the data of worker.document_added and _removed.
	WorkerDocument struct {
		WorkerID   int64 `json:"worker_id"`
		DocumentID int64 `json:"document_id"`
	}
	// FacilityCreated is the data of facility.created.
	FacilityCreated struct {
		ID       int64  `json:"id"`
		Name     string `json:"name"`
		IsActive bool   `json:"is_active"`
	}
	// FacilityRef is the data of facility.activated and facility.deactivated.
	FacilityRef struct {
		FacilityID int64 `json:"facility_id"`
	}
	// FacilityRequirement is the data of facility.requirement_added and _removed.
	FacilityRequirement struct {
		FacilityID int64 `json:"facility_id"`
		DocumentID int64 `json:"document_id"`
	}
	// DocumentCreated is the data of document.created.
	DocumentCreated struct {
		ID       int64  `json:"id"`
		Name     string `json:"name"`
		IsActive bool   `json:"is_active"`
	}
)

// newData returns a pointer to a zero payload of the event type, or nil
// for an unknown type.
func newData(typ string) any {
	switch typ {
	case TypeShiftCreated:
		return &ShiftCreated{}
	case TypeShiftClaimed:
		return &ShiftClaimed{}
	case TypeShiftReleased, TypeShiftDeleted:
		return &ShiftRef{}
	case TypeWorkerCreated:
		return &WorkerCreated{}
	case TypeWorkerActivated, TypeWorkerDeactivated:
		return &WorkerRef{}
	case TypeWorkerDocumentAdded, TypeWorkerDocumentRemoved:
		return &WorkerDocument{}
	case TypeFacilityCreated:
		return &FacilityCreated{}
	case TypeFacilityActivated, TypeFacilityDeactivated:
		return &FacilityRef{}
	case TypeFacilityRequirementAdded, TypeFacilityRequirementRemoved:
		return &FacilityRequirement{}
	case TypeDocumentCreated:
		return &DocumentCreated{}
	}
	return nil
}

// EventTypes lists every event type, in DESIGN.md's order.
var EventTypes = []string{
	TypeShiftCreated, TypeShiftClaimed, TypeShiftReleased, TypeShiftDeleted,
	TypeWorkerCreated, TypeWorkerActivated, TypeWorkerDeactivated,
	TypeWorkerDocumentAdded, TypeWorkerDocumentRemoved,
	TypeFacilityCreated, TypeFacilityActivated, TypeFacilityDeactivated,
	TypeFacilityRequirementAdded, TypeFacilityRequirementRemoved,
	TypeDocumentCreated,
}

// SubjectPrefix is prepended to an event type to form its subject.
const SubjectPrefix = "marketplace."

// Subject returns the NATS subject events of type typ are published on.
func Subject(typ string) string { return SubjectPrefix + typ }

// Event is a CloudEvents 1.0 event in structured JSON mode, with Data
// decoded into the payload type of Type (one of the types above, by
// pointer).
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype,omitempty"`
	Data            any       `json:"data"`
}

// NewEvent builds an event of type typ carrying data, validated as
// DecodeEvent would validate it.
func NewEvent(id, source, typ string, at time.Time, data any) (Event, error) {
	e := Event{SpecVersion: "1.0", ID: id, Source: source, Type: typ, Time: at.UTC(), DataContentType: "application/json", Data: data}
	raw, err := json.Marshal(e)
	if err != nil {
		return Event{}, Errorf(EINVALID, "encode %s event: %v", typ, err)
	}
	return DecodeEvent(raw)
}

// DecodeEvent parses and validates a structured-mode CloudEvent: the
// envelope's required attributes, a known type, and a payload that has
// every field of its type, no others, of the right JSON types and valid
// values. Every failure is an EINVALID error saying what is wrong.
func DecodeEvent(raw []byte) (Event, error) {
	var env struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Time            json.RawMessage `json:"time"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return Event{}, Errorf(EINVALID, "event is not a CloudEvents JSON object: %v", err)
	}
	if members == nil {
		return Event{}, Errorf(EINVALID, "event is not a CloudEvents JSON object: got null")
	}
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if k != strings.ToLower(k) {
			return Event{}, Errorf(EINVALID, "event attribute %q is not lower case", k)
		}
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, Errorf(EINVALID, "event is not a CloudEvents JSON object: %v", err)
	}
	switch {
	case env.SpecVersion != "1.0":
		return Event{}, Errorf(EINVALID, "specversion must be \"1.0\", got %q", env.SpecVersion)
	case env.ID == "":
		return Event{}, Errorf(EINVALID, "event id is missing")
	case len(env.ID) > 256:
		return Event{}, Errorf(EINVALID, "event id is longer than 256 characters")
	case env.Source == "":
		return Event{}, Errorf(EINVALID, "event source is missing")
	case len(env.Time) == 0 || bytes.Equal(env.Time, []byte("null")):
		return Event{}, Errorf(EINVALID, "event time is missing")
	case env.DataContentType != "" && env.DataContentType != "application/json":
		return Event{}, Errorf(EINVALID, "datacontenttype must be application/json, got %q", env.DataContentType)
	}
	at, err := parseTime("event time", env.Time)
	if err != nil {
		return Event{}, Errorf(EINVALID, "%v", err)
	}
	data := newData(env.Type)
	if data == nil {
		return Event{}, Errorf(EINVALID, "unknown event type %q", env.Type)
	}
	if err := decodeStrict(env.Data, data); err != nil {
		return Event{}, Errorf(EINVALID, "%s data: %v", env.Type, err)
	}
	if err := validate(data); err != nil {
		return Event{}, Errorf(EINVALID, "%s data: %v", env.Type, err)
	}
	return Event{
		SpecVersion: env.SpecVersion, ID: env.ID, Source: env.Source, Type: env.Type,
		Time: at, DataContentType: env.DataContentType, Data: data,
	}, nil
}

// decodeStrict decodes a JSON object into v (a pointer to a payload struct)
// refusing unknown fields and requiring every field to be present.
func decodeStrict(raw json.RawMessage, v any) error {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return fmt.Errorf("missing")
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal(raw, &present); err != nil {
		return fmt.Errorf("not a JSON object")
	}
	rt := reflect.TypeOf(v).Elem()
	fields := map[string]reflect.Type{}
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		fields[name] = rt.Field(i).Type
	}
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		val, ok := present[name]
		if !ok || bytes.Equal(val, []byte("null")) {
			return fmt.Errorf("field %q is missing", name)
		}
		if rt.Field(i).Type == reflect.TypeFor[time.Time]() {
			if _, err := parseTime(fmt.Sprintf("field %q", name), val); err != nil {
				return err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(present)) {
		if _, ok := fields[k]; !ok {
			return fmt.Errorf("unknown field %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %q must be a JSON %s, got %s", te.Field, jsonKind(te.Type), te.Value)
		}
		return err
	}
	return nil
}

var rfc3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`)

// parseTime parses raw, a JSON value, as an RFC 3339 time string whose UTC
// form is still within years 0000-9999 (so that it re-encodes), in UTC.
func parseTime(name string, raw json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || !rfc3339.MatchString(s) {
		return time.Time{}, fmt.Errorf("%s must be an RFC 3339 time string, got %s", name, raw)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s must be an RFC 3339 time string, got %s: %w", name, raw, err)
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("%s %s is outside years 0000-9999 in UTC", name, raw)
	}
	return t, nil
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int64, reflect.Int, reflect.Int32:
		return "integer"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	}
	if t == reflect.TypeOf(time.Time{}) {
		return "RFC 3339 time string"
	}
	return t.String()
}

func positive(name string, v int64) error {
	if v < 1 || v > 1<<31-1 {
		return fmt.Errorf("%s must be a positive 32-bit integer id, got %d", name, v)
	}
	return nil
}

func validate(data any) error {
	switch d := data.(type) {
	case *ShiftCreated:
		if err := firstErr(positive("id", d.ID), positive("facility_id", d.FacilityID)); err != nil {
			return err
		}
		if _, err := ParseProfession(string(d.Profession)); err != nil {
			return fmt.Errorf("unknown profession %q (want CNA, LVN or RN)", d.Profession)
		}
		if !d.End.After(d.Start) {
			return fmt.Errorf("end %s is not after start %s", d.End.Format(time.RFC3339), d.Start.Format(time.RFC3339))
		}
		d.Start, d.End = d.Start.UTC(), d.End.UTC()
	case *ShiftClaimed:
		return firstErr(positive("shift_id", d.ShiftID), positive("worker_id", d.WorkerID))
	case *ShiftRef:
		return positive("shift_id", d.ShiftID)
	case *WorkerCreated:
		if err := positive("id", d.ID); err != nil {
			return err
		}
		if _, err := ParseProfession(string(d.Profession)); err != nil {
			return fmt.Errorf("unknown profession %q (want CNA, LVN or RN)", d.Profession)
		}
		if strings.TrimSpace(d.Name) == "" {
			return fmt.Errorf("name is empty")
		}
	case *WorkerRef:
		return positive("worker_id", d.WorkerID)
	case *WorkerDocument:
		return firstErr(positive("worker_id", d.WorkerID), positive("document_id", d.DocumentID))
	case *FacilityCreated:
		if err := positive("id", d.ID); err != nil {
			return err
		}
		if strings.TrimSpace(d.Name) == "" {
			return fmt.Errorf("name is empty")
		}
	case *FacilityRef:
		return positive("facility_id", d.FacilityID)
	case *FacilityRequirement:
		return firstErr(positive("facility_id", d.FacilityID), positive("document_id", d.DocumentID))
	case *DocumentCreated:
		if err := positive("id", d.ID); err != nil {
			return err
		}
		if strings.TrimSpace(d.Name) == "" {
			return fmt.Errorf("name is empty")
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
