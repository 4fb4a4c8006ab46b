package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
)

// Field is what a column means to the importer, independent of how the sheet
// names it.
type Field string

// The fields of the seeds' sheets: the customer table (客户信息管理与分析表单
// and its variants in seeds 000–003), orders, and follow-ups.
const (
	FieldCustomer       Field = "customer"
	FieldName           Field = "name"
	FieldIndustry       Field = "industry"
	FieldRegion         Field = "region"
	FieldEmployees      Field = "employees"
	FieldSourceChannel  Field = "source_channel"
	FieldContactName    Field = "contact_name"
	FieldContactTitle   Field = "contact_title"
	FieldPhone          Field = "phone"
	FieldEmail          Field = "email"
	FieldSince          Field = "since"
	FieldTotalAmount    Field = "total_amount"
	FieldLastAt         Field = "last_at"
	FieldSatisfaction   Field = "satisfaction"
	FieldFeedback       Field = "feedback"
	FieldNeeds          Field = "needs"
	FieldPreference     Field = "communication_preference"
	FieldSensitivity    Field = "price_sensitivity"
	FieldOwner          Field = "owner"
	FieldOrderID        Field = "order_id"
	FieldOrderDate      Field = "order_date"
	FieldOrderAmount    Field = "order_amount"
	FieldCategory       Field = "category"
	FieldChannel        Field = "channel"
	FieldFollowUpDate   Field = "followup_date"
	FieldFollowUpBy     Field = "followup_by"
	FieldFollowUpMethod Field = "followup_channel"
	FieldSummary        Field = "summary"
	FieldOutcome        Field = "outcome"
)

// seedHeaders maps the column names found in the seeds (and their common
// variants, simplified and traditional) to fields. Headers are compared
// after Normalize and without spaces, "*" (required marks) and bracketed
// units ("累计合作金额（元）").
var seedHeaders = map[string]Field{
	"客户编号": FieldCustomer, "客戶編號": FieldCustomer, "客户代码": FieldCustomer, "客户id": FieldCustomer,
	"客户名称": FieldName, "客戶名稱": FieldName, "客户全称": FieldName, "企业名称": FieldName, "公司名称": FieldName, "客户姓名": FieldName,
	"所属行业": FieldIndustry, "所屬行業": FieldIndustry, "行业": FieldIndustry,
	"区域": FieldRegion, "所在区域": FieldRegion, "所在城市": FieldRegion, "地区": FieldRegion, "所在地区": FieldRegion, "所在城市区域": FieldRegion,
	"员工人数": FieldEmployees, "企业规模": FieldEmployees,
	"客户来源": FieldSourceChannel, "客户来源渠道": FieldSourceChannel, "来源渠道": FieldSourceChannel,
	"联系人": FieldContactName, "聯繫人": FieldContactName, "联系人姓名": FieldContactName,
	"职位": FieldContactTitle, "職位": FieldContactTitle, "联系人职位": FieldContactTitle,
	"联系电话": FieldPhone, "聯繫電話": FieldPhone, "电话": FieldPhone, "手机": FieldPhone, "手机号": FieldPhone, "联系方式": FieldPhone,
	"电子邮箱": FieldEmail, "邮箱": FieldEmail, "email": FieldEmail,
	"合作起始日期": FieldSince, "首次合作日期": FieldSince, "首次消费时间": FieldSince, "合作开始日期": FieldSince,
	"累计合作金额": FieldTotalAmount, "累計合作金額": FieldTotalAmount, "累计消费金额": FieldTotalAmount, "累计金额": FieldTotalAmount,
	"最近合作时间": FieldLastAt, "最近合作時間": FieldLastAt, "最近合作日期": FieldLastAt, "最近消费时间": FieldLastAt,
	"满意度评分": FieldSatisfaction, "滿意度評分": FieldSatisfaction, "满意度": FieldSatisfaction,
	"反馈内容": FieldFeedback, "满意度反馈": FieldFeedback,
	"核心诉求": FieldNeeds, "核心訴求": FieldNeeds, "客户核心诉求": FieldNeeds, "需求描述": FieldNeeds,
	"沟通偏好": FieldPreference, "偏好沟通方式": FieldPreference,
	"价格敏感度": FieldSensitivity,
	"负责人":   FieldOwner, "負責人": FieldOwner, "客户负责人": FieldOwner, "客户经理": FieldOwner,
	"订单编号": FieldOrderID, "订单号": FieldOrderID,
	"下单日期": FieldOrderDate, "订单日期": FieldOrderDate, "下单时间": FieldOrderDate, "成交日期": FieldOrderDate,
	"订单金额": FieldOrderAmount, "成交金额": FieldOrderAmount, "金额": FieldOrderAmount,
	"品类": FieldCategory, "产品类别": FieldCategory, "产品类型": FieldCategory, "产品/服务类型": FieldCategory,
	"渠道": FieldChannel, "下单渠道": FieldChannel, "购买渠道": FieldChannel,
	"跟进日期": FieldFollowUpDate, "跟进时间": FieldFollowUpDate, "沟通时间": FieldFollowUpDate,
	"跟进人":  FieldFollowUpBy,
	"跟进方式": FieldFollowUpMethod, "沟通方式": FieldFollowUpMethod,
	"跟进内容": FieldSummary, "沟通内容": FieldSummary, "跟进记录": FieldSummary,
	"跟进结果": FieldOutcome,
}

// Mapping names the columns of one file's sheets; it extends (and may
// override) the seeds' headers.
type Mapping struct {
	// Columns maps a header as written in the sheet to a field name.
	Columns map[string]Field `yaml:"columns"`
}

// LoadMapping reads a mapping file:
//
//	columns:
//	  客户代码: customer
//	  合同金额(元): total_amount
//
// Unknown field names are an error, so a typo does not silently drop a column.
func LoadMapping(path string) (Mapping, error) {
	raw, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return Mapping{}, fmt.Errorf("mapping file: %w", err)
	}
	var m Mapping
	if err := yaml.UnmarshalWithOptions(raw, &m, yaml.DisallowUnknownField()); err != nil {
		return Mapping{}, fmt.Errorf("mapping file %s: %w", path, err)
	}
	for h, f := range m.Columns {
		if !knownField(f) {
			return Mapping{}, fmt.Errorf("mapping file %s: column %q maps to unknown field %q", path, h, f)
		}
	}
	return m, nil
}

func knownField(f Field) bool {
	for _, g := range seedHeaders {
		if g == f {
			return true
		}
	}
	return false
}

// headerKey is the form headers are compared in.
func headerKey(h string) string {
	h = strings.ToLower(Normalize(h))
	if i := strings.IndexAny(h, "(（"); i > 0 {
		h = h[:i]
	}
	return strings.NewReplacer(" ", "", "*", "", "※", "", "\n", "").Replace(h)
}

// field returns what a header means: the mapping file first, then the seeds.
func (m Mapping) field(header string) (Field, bool) {
	k := headerKey(header)
	for h, f := range m.Columns {
		if headerKey(h) == k {
			return f, true
		}
	}
	f, ok := seedHeaders[k]
	return f, ok
}

// SheetKind says what the rows of a sheet are.
type SheetKind string

// The sheet kinds, told apart by their columns.
const (
	SheetCustomers SheetKind = "customers"
	SheetOrders    SheetKind = "orders"
	SheetFollowUps SheetKind = "followups"
)

// Header is a recognised header row: which column holds which field.
type Header struct {
	Kind    SheetKind
	Columns map[Field]int
	Names   []string // the header cells as written
	Ignored []string // headers that mean nothing to the importer
}

// recognise reads a row as a header row, or reports that it is not one: a
// header row names the customer code column and at least one other field.
func (m Mapping) recognise(cells []string) (Header, bool) {
	h := Header{Columns: map[Field]int{}, Names: cells}
	for i, c := range cells {
		if strings.TrimSpace(c) == "" {
			continue
		}
		f, ok := m.field(c)
		if !ok {
			h.Ignored = append(h.Ignored, c)
			continue
		}
		if _, dup := h.Columns[f]; !dup {
			h.Columns[f] = i
		}
	}
	if _, ok := h.Columns[FieldCustomer]; !ok || len(h.Columns) < 2 {
		return Header{}, false
	}
	_, hasOrder := h.Columns[FieldOrderID]
	_, hasOrderAmount := h.Columns[FieldOrderAmount]
	_, hasFollowUp := h.Columns[FieldFollowUpDate]
	_, hasFollowUpBy := h.Columns[FieldFollowUpBy]
	switch {
	case hasOrder || hasOrderAmount:
		h.Kind = SheetOrders
	case hasFollowUp || hasFollowUpBy:
		h.Kind = SheetFollowUps
	default:
		h.Kind = SheetCustomers
	}
	return h, true
}

// headerSearchRows bounds how far down a sheet the header row is looked
// for (title rows and notes often sit above it).
const headerSearchRows = 20

// Recognise reads cells as a header row, as the importer does (for tools
// that convert rows without reading a file, such as the benchmark's
// reference).
func (m Mapping) Recognise(cells []string) (Header, bool) { return m.recognise(cells) }
