package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/projections"
)

// The alert worklist of SPEC §8: one alert with its actions and
// deliveries, and the actions, each appended as an event to the customer's
// stream with "by" = the acting token's identity (auth.Token.Actor).
//
// Who may act: a manage or admin token on any alert; an owner-bound token on
// the alerts it may see (held by its owner, or of a customer its owner
// owns; the others are 404 for it, so their existence does not leak); any
// other token 403. A resolved or superseded alert is 409 alert_closed, an
// info alert 409 alert_not_actionable. The action is recorded when the
// answer is 202; the alert shows it once the projector applied the event
// (FollowCommits: milliseconds). An action that races with the alert's end
// is recorded and changes nothing (domain.Projection.alertAction).

// AlertReader is what the alert endpoints need of the read side.
type AlertReader interface {
	Alert(ctx context.Context, id uuid.UUID) (domain.Alert, error)
	AlertDocument(a *domain.Alert) projections.AlertDocument
	CustomerOwner(ctx context.Context, code domain.CustomerCode) (string, error)
}

// actionDocument is one event acting on an alert, as GET /v1/alerts/{id}
// lists them.
type actionDocument struct {
	EventID    uuid.UUID `json:"event_id"`
	Type       string    `json:"type"`
	By         string    `json:"by"`
	RecordedAt string    `json:"recorded_at"`
	To         string    `json:"to,omitempty"`
	Until      string    `json:"until,omitempty"`
	Note       string    `json:"note,omitempty"`
	Channel    string    `json:"channel,omitempty"`
}

// openActor is "by" when no tokens are configured (a loopback-only API).
const openActor = "local"

// actor is who the request acts as.
func actor(r *http.Request) string {
	if t := auth.FromContext(r.Context()); t != nil {
		return t.Actor()
	}
	return openActor
}

// visibleAlert loads the path's alert and answers 400/404 (and false) when
// the id is bad, the alert does not exist, or an owner-bound token may not
// see it.
func (a *api) visibleAlert(w http.ResponseWriter, r *http.Request) (domain.Alert, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil || len(r.PathValue("id")) != 36 {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "id", Message: "id must be an alert_id (a UUID)"})
		return domain.Alert{}, false
	}
	al, err := a.cfg.Alerts.Alert(r.Context(), id)
	if err == nil && !a.mayRead(r, &al) {
		err = projections.ErrAlertNotFound
	}
	switch {
	case errors.Is(err, projections.ErrAlertNotFound):
		writeError(w, http.StatusNotFound, apiError{Code: "alert_not_found", Field: "id", Message: "no alert " + id.String()})
		return al, false
	case err != nil:
		a.readFailed(w, err, "")
		return al, false
	}
	return al, true
}

// mayRead reports whether the request's token may see alert al: any token
// not bound to an owner; a bound one when its owner holds the alert or owns
// the customer now.
func (a *api) mayRead(r *http.Request, al *domain.Alert) bool {
	t := auth.FromContext(r.Context())
	if t == nil || t.Owner == "" || t.Has(auth.ScopeManage) || al.Owner == t.Owner {
		return true
	}
	owner, err := a.cfg.Alerts.CustomerOwner(r.Context(), al.Customer)
	return err == nil && owner == t.Owner
}

func (a *api) getAlert(w http.ResponseWriter, r *http.Request) {
	al, ok := a.visibleAlert(w, r)
	if !ok {
		return
	}
	actions, err := a.alertActions(r.Context(), &al)
	if err != nil {
		a.readFailed(w, err, al.Customer)
		return
	}
	deliveries := []notify.Delivery{}
	if a.cfg.Deliveries != nil {
		if deliveries, err = a.cfg.Deliveries.AlertDeliveries(r.Context(), al.ID); err != nil {
			a.readFailed(w, err, al.Customer)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alert": a.cfg.Alerts.AlertDocument(&al), "actions": actions, "deliveries": deliveries})
}

// alertActions are the customer's events acting on al, oldest first: the
// actions naming it, and the follow-up that resolved it.
func (a *api) alertActions(ctx context.Context, al *domain.Alert) ([]actionDocument, error) {
	out := []actionDocument{}
	var after int64
	for {
		events, err := a.cfg.Store.ReadStream(ctx, al.Customer, after, maxPage)
		if err != nil {
			return nil, err
		}
		for i := range events {
			e := &events[i]
			if e.Type != domain.TypeFollowUpLogged && !domain.IsAlertAction(e.Type) {
				continue
			}
			data, err := domain.DecodeData(e.Type, e.Data)
			if err != nil {
				return nil, err
			}
			if id, ok := domain.ActionAlertID(data); (ok && id == al.ID) || e.EventID == al.ResolvedBy {
				out = append(out, a.actionDocument(e.EventID, e.Type, e.RecordedAt, data))
			}
		}
		if len(events) < maxPage {
			return out, nil
		}
		after = events[len(events)-1].Version
	}
}

func (a *api) actionDocument(id uuid.UUID, t domain.EventType, at time.Time, data domain.Event) actionDocument {
	d := actionDocument{EventID: id, Type: string(t), RecordedAt: at.In(a.cfg.Location).Format(time.RFC3339Nano)}
	switch e := data.(type) {
	case *domain.AlertAcknowledged:
		d.By = e.By
	case *domain.AlertAssigned:
		d.By, d.To = e.By, e.To
	case *domain.AlertSnoozed:
		d.By, d.Until = e.By, e.Until.In(a.cfg.Location).Format(time.RFC3339Nano)
	case *domain.FollowUpLogged:
		d.By, d.Note, d.Channel = e.By, e.Summary, e.Channel
	}
	return d
}

// actionBody is the body of the action endpoints; each takes its members
// (ack: none; assign: to; snooze: until; resolve: note, channel).
type actionBody struct {
	To      *string `json:"to"`
	Until   *string `json:"until"`
	Note    *string `json:"note"`
	Channel *string `json:"channel"`
}

// actOn is the handler of one action: decode the body (members allowed),
// check who may act, build the event, append it.
func (a *api) actOn(allowed []string, build func(al *domain.Alert, b *actionBody, by string) (domain.Event, *apiError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b actionBody
		if !a.decodeActionBody(w, r, allowed, &b) {
			return
		}
		al, ok := a.visibleAlert(w, r)
		if !ok || !a.mayAct(w, r, &al) {
			return
		}
		data, bad := build(&al, &b, actor(r))
		if bad != nil {
			a.reject(w, http.StatusBadRequest, *bad)
			return
		}
		env := domain.Envelope{EventID: uuid.New(), Type: data.EventType(), Customer: al.Customer, Source: "alerts-api", Data: data}
		if err := env.Validate(a.cfg.Now()); err != nil {
			var ve *domain.ValidationError
			if errors.As(err, &ve) {
				first := ve.First()
				field := strings.TrimPrefix(first.Field, "data.")
				a.reject(w, http.StatusBadRequest, apiError{Code: first.Code, Field: field, Message: field + " " + first.Message})
				return
			}
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Message: err.Error()})
			return
		}
		req := domain.AppendRequest{Events: []domain.Envelope{env}}
		results, err := a.cfg.Store.Append(r.Context(), req)
		if err != nil {
			a.appendFailed(w, r, req, err)
			return
		}
		res := results[0]
		writeJSON(w, http.StatusAccepted, map[string]any{
			"alert_id": al.ID, "event_id": res.EventID, "type": env.Type, "customer": res.Customer, "version": res.Version,
			"position": res.Position, "recorded_at": res.RecordedAt.In(a.cfg.Location).Format(time.RFC3339Nano), "by": actor(r),
		})
	}
}

// mayAct answers 403/409 (and false) unless the request may act on al.
func (a *api) mayAct(w http.ResponseWriter, r *http.Request, al *domain.Alert) bool {
	if t := auth.FromContext(r.Context()); t != nil && t.Owner == "" && !t.Has(auth.ScopeManage) {
		a.reject(w, http.StatusForbidden, apiError{Code: "forbidden", Message: "only the alert's owner (an owner-bound token) or a manage or admin token may act on an alert"})
		return false
	}
	switch {
	case al.Closed():
		writeError(w, http.StatusConflict, apiError{Code: "alert_closed", Field: "id", Message: "the alert is " + al.Status})
		return false
	case al.Status == domain.AlertInfo:
		writeError(w, http.StatusConflict, apiError{Code: "alert_not_actionable", Field: "id", Message: "an info alert is a record, not a task"})
		return false
	}
	return true
}

// decodeActionBody reads an optional JSON object with only the allowed
// members.
func (a *api) decodeActionBody(w http.ResponseWriter, r *http.Request, allowed []string, b *actionBody) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		a.reject(w, http.StatusRequestEntityTooLarge, apiError{Code: "body_too_large", Field: "body", Message: "request body exceeds 64 KiB"})
		return false
	}
	if strings.TrimSpace(string(raw)) == "" {
		return true
	}
	if err := json.Unmarshal(raw, b, json.RejectUnknownMembers(true)); err != nil {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidJSON, Field: "body", Message: "body must be a JSON object with " + memberList(allowed)})
		return false
	}
	for name, set := range map[string]bool{"to": b.To != nil, "until": b.Until != nil, "note": b.Note != nil, "channel": b.Channel != nil} {
		if set && !contains(allowed, name) {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeUnknownField, Field: name, Message: name + " is not a member of this action"})
			return false
		}
	}
	return true
}

func memberList(allowed []string) string {
	if len(allowed) == 0 {
		return "no members"
	}
	return "members " + strings.Join(allowed, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func required(field string) *apiError {
	return &apiError{Code: domain.CodeRequired, Field: field, Message: field + " is required"}
}

func ackEvent(al *domain.Alert, _ *actionBody, by string) (domain.Event, *apiError) {
	return &domain.AlertAcknowledged{AlertID: al.ID, By: by}, nil
}

func assignEvent(al *domain.Alert, b *actionBody, by string) (domain.Event, *apiError) {
	if b.To == nil {
		return nil, required("to")
	}
	return &domain.AlertAssigned{AlertID: al.ID, To: *b.To, By: by}, nil
}

func snoozeEvent(al *domain.Alert, b *actionBody, by string) (domain.Event, *apiError) {
	if b.Until == nil {
		return nil, required("until")
	}
	until, err := time.Parse(time.RFC3339Nano, *b.Until)
	if err != nil {
		return nil, &apiError{Code: domain.CodeInvalidFormat, Field: "until", Message: "until must be an RFC 3339 time such as 2026-03-03T09:00:00+08:00"}
	}
	return &domain.AlertSnoozed{AlertID: al.ID, Until: until, By: by}, nil
}

// resolveEvent is the follow-up that resolves the alert: note is its
// summary.
func resolveEvent(al *domain.Alert, b *actionBody, by string) (domain.Event, *apiError) {
	id := al.ID
	f := &domain.FollowUpLogged{By: by, AlertID: &id}
	if b.Note != nil {
		f.Summary = *b.Note
	}
	if b.Channel != nil {
		f.Channel = *b.Channel
	}
	return f, nil
}

// bindActor applies SPEC §8's "by is the token's identity" to POST
// /v1/events: alert actions are refused there (they go through the alert
// endpoints, which check who may act), and with tokens configured a
// FollowUpLogged's by must be the token's actor (auth.Token.Actor) — a body
// naming someone else is refused, not rewritten. Without tokens (a
// loopback-only API) by is taken as given.
func bindActor(r *http.Request, req *domain.AppendRequest) *apiError {
	tok := auth.FromContext(r.Context())
	for i := range req.Events {
		e := &req.Events[i]
		prefix := ""
		if req.Batch {
			prefix = "events[" + strconv.Itoa(i) + "]."
		}
		if domain.IsAlertAction(e.Type) {
			return &apiError{Code: domain.CodeInvalidValue, Field: prefix + "type",
				Message: string(e.Type) + " is recorded by POST /v1/alerts/{id}/ack, /assign or /snooze, which check who may act"}
		}
		if f, ok := e.Data.(*domain.FollowUpLogged); ok && tok != nil && f.By != tok.Actor() {
			return &apiError{Code: domain.CodeInvalidValue, Field: prefix + "data.by",
				Message: prefix + "data.by must be " + tok.Actor() + ", the identity of the token (by is never someone else)"}
		}
	}
	return nil
}
