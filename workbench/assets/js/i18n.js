// Display text: zh-CN by default, English on request (kept in localStorage).

const zh = {
  brand: 'Segments 客户工作台', skip: '跳到正文', nav: '主导航',
  'nav.inbox': '我的预警', 'nav.customers': '客户列表', 'nav.overview': '客群概览', 'nav.audit': '审计',
  logout: '退出', switchLang: 'English',
  'login.title': '登录工作台', 'login.token': '访问令牌', 'login.submit': '登录',
  'login.open': '本服务未配置令牌（仅本机回环地址可访问）：无需令牌即可进入，个人信息始终脱敏显示。', 'login.enter': '进入工作台',
  'login.failed': '登录失败：', loading: '加载中…', error: '出错了：', none: '暂无',
  'inbox.title': '我的预警', 'inbox.overdue': '已逾期', 'inbox.today': '今日到期', 'inbox.open': '待处理',
  'inbox.owner': '负责人（留空看全部）', 'inbox.refresh': '刷新', 'inbox.due': '截止', 'inbox.created': '产生',
  'act.ack': '确认', 'act.snooze': '暂缓', 'act.snoozeFor': '暂缓时长', 'act.followup': '记录跟进', 'act.note': '跟进内容',
  'act.channel': '跟进方式', 'act.assign': '转派', 'act.to': '转派给', 'act.done': '已完成：', 'h2': '2 小时', 'd1': '1 天', 'd3': '3 天', 'd7': '7 天',
  'ch.phone': '电话', 'ch.email': '邮件', 'ch.visit': '拜访', 'ch.wechat': '微信', 'ch.other': '其他',
  'list.title': '客户列表', 'list.q': '客户编号或名称', 'list.owner': '负责人', 'list.search': '查询', 'list.reset': '重置',
  'list.more': '加载更多', 'list.export': '导出', 'list.count': '已显示 {n} 位客户', any: '全部',
  'col.code': '客户编号', 'col.name': '客户名称', 'col.owner': '负责人', 'col.value_tier': '价值层级', 'col.activity': '活跃度',
  'col.segment': '客群', 'col.lifecycle': '生命周期', 'col.need_orientation': '需求导向', 'col.tag': '标签', 'col.net': '累计净额',
  'col.lastOrder': '最近下单', 'col.changed': '最近变化',
  'card.basic': '基础信息', 'card.behaviour': '行为特征', 'card.needs': '需求偏好', 'card.value': '价值评估',
  'card.tags': '标签及原因', 'card.timeline': '标签时间线', 'card.events': '最近事件', 'card.alerts': '未处理预警',
  'card.needAudit': '需要审计权限（audit）才能查看。', 'card.asOf': '数据时点',
  'card.duplicates': '疑似重复', 'dup.same': '相同', 'dup.name': '客户名称', 'dup.phone': '联系电话', 'dup.email': '邮箱',
  'f.name': '客户名称', 'f.kind': '类型', 'f.industry': '所属行业', 'f.region': '区域', 'f.owner': '负责人', 'f.contact': '联系人',
  'f.title': '职位', 'f.phone': '联系电话', 'f.email': '邮箱', 'f.source': '来源渠道', 'f.employees': '员工人数',
  'f.orders': '累计订单', 'f.orders3m': '近3个月订单', 'f.orders6m': '近6个月订单', 'f.inquiries3m': '近3个月咨询',
  'f.lastOrder': '最近下单', 'f.satisfaction': '最近满意度', 'f.net': '累计净额', 'f.reason': '原因',
  'yes': '是', 'no': '否', 'f.firstOrder': '首次下单', 'f.aov': '客单价', 'f.repurchase': '复购', 'f.ltv': 'LTV（历史）', 'f.ltvPredicted': 'LTV（预测）',
  'f.sales6m': '近6个月消费', 'f.growth6m': '近6个月增长', 'f.rfm': 'RFM', 'f.nps': '推荐意愿（NPS）',
  'cause.event': '事件', 'cause.time': '时间窗口', 'cause.rules': '规则变更', 'col.at': '时间', 'col.label': '标签', 'col.change': '变化',
  'col.cause': '原因类型', 'col.type': '事件类型', 'col.detail': '内容',
  'ov.title': '客群概览', 'ov.heat': '价值 × 活跃度 热力图', 'ov.heatCaption': '每格：客户数、营收占比与客群名称；行是价值层级，列是活跃度', 'ov.customers': '位客户', 'ov.share': '营收占比',
  'ov.trend': '客群贡献趋势（月末）', 'ov.trendTable': '趋势数据', 'ov.dist': '标签分布', 'ov.total': '合计',
  'ov.month': '月份', 'ov.netAmount': '净额', 'ov.customerCount': '客户数',
  'ov.value': '客户价值', 'ov.repurchase': '复购率', 'ov.repurchaseOf': '位下单客户中复购', 'ov.nps': '净推荐值（NPS）',
  'ov.npsOf': '推荐者 − 贬损者，共评分客户', 'ov.npsNone': '暂无推荐评分', 'ov.rfm': 'RFM 客群分布', 'ov.rfmScored': '已评分客户',
  'audit.title': '审计', 'audit.code': '客户编号', 'audit.at': '时点（本地时间）', 'audit.show': '查看该时点',
  'audit.verifyOne': '校验该客户的哈希链', 'audit.verifyAll': '校验全部事件的哈希链',
  'audit.intact': '哈希链完整', 'audit.broken': '哈希链断裂', 'audit.checked': '已校验事件数',
  'kind.activity_dropped': '活跃度下降', 'kind.churn_risk': '流失预警', 'kind.data_incomplete': '待补充',
  'kind.value_tier_changed': '价值层级变化', 'kind.followup_overdue': '跟进超时',
  'st.open': '待处理', 'st.overdue': '已逾期', 'st.acknowledged': '已确认', 'st.snoozed': '已暂缓', 'st.resolved': '已解决',
  'st.superseded': '已被取代', 'st.info': '通知',
};

const en = {
  brand: 'Segments workbench', skip: 'Skip to content', nav: 'Main navigation',
  'nav.inbox': 'My alerts', 'nav.customers': 'Customers', 'nav.overview': 'Segments', 'nav.audit': 'Audit',
  logout: 'Log out', switchLang: '中文',
  'login.title': 'Log in', 'login.token': 'Access token', 'login.submit': 'Log in',
  'login.open': 'No tokens are configured (loopback only): enter without a token; personal data stays masked.', 'login.enter': 'Enter',
  'login.failed': 'Login failed: ', loading: 'Loading…', error: 'Error: ', none: 'None',
  'inbox.title': 'My alerts', 'inbox.overdue': 'Overdue', 'inbox.today': 'Due today', 'inbox.open': 'Open',
  'inbox.owner': 'Owner (empty: all)', 'inbox.refresh': 'Refresh', 'inbox.due': 'Due', 'inbox.created': 'Raised',
  'act.ack': 'Acknowledge', 'act.snooze': 'Snooze', 'act.snoozeFor': 'Snooze for', 'act.followup': 'Log follow-up', 'act.note': 'Follow-up note',
  'act.channel': 'Channel', 'act.assign': 'Reassign', 'act.to': 'Reassign to', 'act.done': 'Done: ', 'h2': '2 hours', 'd1': '1 day', 'd3': '3 days', 'd7': '7 days',
  'ch.phone': 'Phone', 'ch.email': 'Email', 'ch.visit': 'Visit', 'ch.wechat': 'WeChat', 'ch.other': 'Other',
  'list.title': 'Customers', 'list.q': 'Code or name', 'list.owner': 'Owner', 'list.search': 'Search', 'list.reset': 'Reset',
  'list.more': 'Load more', 'list.export': 'Export', 'list.count': '{n} customers shown', any: 'Any',
  'col.code': 'Customer', 'col.name': 'Name', 'col.owner': 'Owner', 'col.value_tier': 'Value tier', 'col.activity': 'Activity',
  'col.segment': 'Segment', 'col.lifecycle': 'Lifecycle', 'col.need_orientation': 'Need', 'col.tag': 'Tag', 'col.net': 'Net amount',
  'col.lastOrder': 'Last order', 'col.changed': 'Last change',
  'card.basic': 'Basic attributes', 'card.behaviour': 'Behaviour', 'card.needs': 'Needs', 'card.value': 'Value assessment',
  'card.tags': 'Tags and reasons', 'card.timeline': 'Label timeline', 'card.events': 'Recent events', 'card.alerts': 'Open alerts',
  'card.needAudit': 'Needs the audit scope.', 'card.asOf': 'As of',
  'card.duplicates': 'Possible duplicate of', 'dup.same': 'same', 'dup.name': 'legal name', 'dup.phone': 'phone', 'dup.email': 'email',
  'f.name': 'Name', 'f.kind': 'Kind', 'f.industry': 'Industry', 'f.region': 'Region', 'f.owner': 'Owner', 'f.contact': 'Contact',
  'f.title': 'Title', 'f.phone': 'Phone', 'f.email': 'Email', 'f.source': 'Source channel', 'f.employees': 'Employees',
  'f.orders': 'Orders', 'f.orders3m': 'Orders (3 months)', 'f.orders6m': 'Orders (6 months)', 'f.inquiries3m': 'Inquiries (3 months)',
  'f.lastOrder': 'Last order', 'f.satisfaction': 'Latest satisfaction', 'f.net': 'Net amount', 'f.reason': 'Reason',
  'yes': 'yes', 'no': 'no', 'f.firstOrder': 'First order', 'f.aov': 'Average order value', 'f.repurchase': 'Repurchase', 'f.ltv': 'LTV (historical)',
  'f.ltvPredicted': 'LTV (predicted)', 'f.sales6m': 'Sales (6 months)', 'f.growth6m': 'Growth (6 months)', 'f.rfm': 'RFM', 'f.nps': 'Recommendation (NPS)',
  'cause.event': 'event', 'cause.time': 'time window', 'cause.rules': 'rule change', 'col.at': 'When', 'col.label': 'Label', 'col.change': 'Change',
  'col.cause': 'Cause', 'col.type': 'Type', 'col.detail': 'Detail',
  'ov.title': 'Segment overview', 'ov.heat': 'Value × activity heat map', 'ov.heatCaption': 'Each cell: customers, revenue share and segment name; rows are value tiers, columns activity', 'ov.customers': 'customers', 'ov.share': 'revenue share',
  'ov.trend': 'Segment contribution (month ends)', 'ov.trendTable': 'Trend data', 'ov.dist': 'Label distribution', 'ov.total': 'Total',
  'ov.month': 'Month', 'ov.netAmount': 'Net amount', 'ov.customerCount': 'Customers',
  'ov.value': 'Customer value', 'ov.repurchase': 'Repurchase rate', 'ov.repurchaseOf': 'customers with orders, repeat buyers', 'ov.nps': 'Net promoter score (NPS)',
  'ov.npsOf': 'promoters − detractors, customers rated', 'ov.npsNone': 'no recommendation scores yet', 'ov.rfm': 'RFM segments', 'ov.rfmScored': 'customers scored',
  'audit.title': 'Audit', 'audit.code': 'Customer code', 'audit.at': 'Instant (local time)', 'audit.show': 'Show at that instant',
  'audit.verifyOne': 'Verify this customer\'s hash chain', 'audit.verifyAll': 'Verify the whole log',
  'audit.intact': 'hash chain intact', 'audit.broken': 'hash chain broken', 'audit.checked': 'events checked',
  'kind.activity_dropped': 'Activity dropped', 'kind.churn_risk': 'Churn risk', 'kind.data_incomplete': 'Profile incomplete',
  'kind.value_tier_changed': 'Value tier changed', 'kind.followup_overdue': 'Follow-up overdue',
  'st.open': 'open', 'st.overdue': 'overdue', 'st.acknowledged': 'acknowledged', 'st.snoozed': 'snoozed', 'st.resolved': 'resolved',
  'st.superseded': 'superseded', 'st.info': 'info',
};

let lang = localStorage.getItem('segments.lang') === 'en' ? 'en' : 'zh';

export function getLang() { return lang; }

export function setLang(l) {
  lang = l === 'en' ? 'en' : 'zh';
  localStorage.setItem('segments.lang', lang);
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
}

export function t(key, vars) {
  let s = (lang === 'en' ? en : zh)[key] ?? zh[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace('{' + k + '}', v);
  return s;
}

// label shows a value's display name (Chinese) or, in English, its code
// with the display name after it.
export function label(v) {
  if (!v) return '—';
  if (lang === 'en') return v.value + (v.display ? ' (' + v.display + ')' : '');
  return v.display || v.value;
}

// reason picks the reason in the current language.
export function reason(x) {
  return (lang === 'en' ? x.reason_en : x.reason) || x.reason || '';
}
