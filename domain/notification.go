package domain

import "time"

// NotificationTypeShiftsAvailable is the type of the digest push.
const NotificationTypeShiftsAvailable = "shifts.available"

// NotificationSubjectPrefix is prepended to a worker id to form the NATS
// subject a worker's notifications are published on.
const NotificationSubjectPrefix = "notifications.worker."

// Notification is the digest pushed to a worker: Count shifts became
// available to them since their last push; Shifts lists the first few,
// soonest first. ID is stable across delivery retries (it is the webhook id).
type Notification struct {
	ID        string              `json:"id"`
	Type      string              `json:"type"`
	WorkerID  int64               `json:"worker_id"`
	Count     int                 `json:"count"`
	Shifts    []NotificationShift `json:"shifts"`
	CreatedAt time.Time           `json:"created_at"`
}

// NotificationShift is one shift listed in a notification.
type NotificationShift struct {
	ID         int64      `json:"id"`
	FacilityID int64      `json:"facility_id"`
	Profession Profession `json:"profession"`
	Start      time.Time  `json:"start"`
	End        time.Time  `json:"end"`
}
