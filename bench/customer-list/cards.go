package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// cardCustomers are customers recorded through the API beside the
// synthetic rows: the card and the auditor's view read a customer's
// document, label history, events and hash chain, which the synthetic rows
// do not have.
const cardCustomers = 20

// realCustomers records cardCustomers customers of 60 events each
// (registration, 30 orders, 10 refunds, 10 inquiries, 9 ratings) through
// POST /v1/events and projects them; it returns their codes.
func realCustomers(ctx context.Context, base string, proj *projections.Projector) ([]string, error) {
	codes := make([]string, cardCustomers)
	ids := make([]uuid.UUID, cardCustomers)
	for i := range codes {
		code := fmt.Sprintf("KH-CARD-%04d", i)
		codes[i], ids[i] = code, domain.CustomerCode(code).StreamID()
		events := make([]string, 0, 60)
		events = append(events, fmt.Sprintf(`{"type":"CustomerRegistered","customer":%q,"data":{"name":"深圳市华强电子有限公司","kind":"enterprise",`+
			`"industry":"制造业-电子元件","region":"广东-深圳","owner":"王经理"}}`, code))
		for k := range 30 {
			events = append(events, fmt.Sprintf(`{"type":"OrderPlaced","customer":%q,"data":{"order_id":"SO-%d","amount":"%d.00","channel":"online"}}`, code, k, 1000+k*137))
		}
		for k := range 10 {
			events = append(events, fmt.Sprintf(`{"type":"OrderRefunded","customer":%q,"data":{"order_id":"SO-%d","amount":"100.00"}}`, code, k),
				fmt.Sprintf(`{"type":"InquiryReceived","customer":%q,"data":{"channel":"phone","topic":"交期 %d"}}`, code, k))
		}
		for k := range 9 {
			events = append(events, fmt.Sprintf(`{"type":"SatisfactionRated","customer":%q,"data":{"score":%d}}`, code, 1+k%5))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", strings.NewReader(`{"events":[`+strings.Join(events, ",")+`]}`))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode/100 != 2 {
			return nil, fmt.Errorf("record %s: %d %s", code, res.StatusCode, body)
		}
	}
	if _, err := proj.Apply(ctx, ids); err != nil {
		return nil, fmt.Errorf("project the card customers: %w", err)
	}
	return codes, nil
}
