package engine

import (
	"maps"
	"slices"

	"github.com/leadconv/leadconv/record"
)

// FieldModel is a CRM's standard record shapes: the API names of the
// standard fields of its leads, contacts, accounts and deals, and the
// mappings its own lead conversion applies between them. Created records get
// the fields of their object only: a lead field reaches a created contact,
// account or opportunity when the model (or the config) maps it there.
type FieldModel struct {
	CRM string `json:"crm"`
	// Lead, Contact, Account and Opportunity list the writable standard
	// fields of each object, sorted.
	Lead        []string `json:"lead"`
	Contact     []string `json:"contact"`
	Account     []string `json:"account"`
	Opportunity []string `json:"opportunity"`
	// ContactFields maps contact fields to the lead fields they hold (the
	// direction of Config.ContactFields); AccountFields and
	// OpportunityFields map lead fields to the created record's fields.
	ContactFields     record.FieldMap   `json:"contact_fields"`
	AccountFields     map[string]string `json:"account_fields"`
	OpportunityFields map[string]string `json:"opportunity_fields"`
	// AccountField is the lead field naming the company; AccountName the
	// account's name field; ContactAccount the contact's account link;
	// Converted the lead flag of a converted lead ("" when the CRM has none).
	AccountField   string `json:"account_field"`
	AccountName    string `json:"account_name"`
	ContactAccount string `json:"contact_account"`
	Converted      string `json:"converted,omitempty"`
	// Created and Modified are the system timestamps on every record: read
	// only, never written to a created record.
	Created  string `json:"created"`
	Modified string `json:"modified"`
	// Canonical maps leadconv's canonical lead names (Salesforce's, as the
	// shipped match rules and `leadconv gen` use them) to this CRM's lead
	// fields.
	Canonical map[string]string `json:"canonical"`
}

// row is one standard field: its name on the lead, the contact, the account
// and the opportunity ("" where the object has no such field), and the
// canonical lead name.
type row struct{ canonical, lead, contact, account, opportunity string }

// Rows per CRM, from the vendors' API references: Salesforce's standard
// lead conversion mapping, Zoho CRM's Leads/Contacts/Accounts/Deals API
// names, HubSpot's default contact, company and deal properties (a HubSpot
// lead is a contact in the lead lifecycle stage), Dynamics 365's lead,
// contact, account and opportunity attributes.
var modelRows = map[string][]row{
	"salesforce": {
		{"FirstName", "FirstName", "FirstName", "", ""},
		{"LastName", "LastName", "LastName", "", ""},
		{"Salutation", "Salutation", "Salutation", "", ""},
		{"Title", "Title", "Title", "", ""},
		{"Email", "Email", "Email", "", ""},
		{"Phone", "Phone", "Phone", "Phone", ""},
		{"MobilePhone", "MobilePhone", "MobilePhone", "", ""},
		{"Fax", "Fax", "Fax", "Fax", ""},
		{"Company", "Company", "", "Name", ""},
		{"Website", "Website", "", "Website", ""},
		{"Industry", "Industry", "", "Industry", ""},
		{"AnnualRevenue", "AnnualRevenue", "", "AnnualRevenue", ""},
		{"NumberOfEmployees", "NumberOfEmployees", "", "NumberOfEmployees", ""},
		{"Rating", "Rating", "", "Rating", ""},
		{"LeadSource", "LeadSource", "LeadSource", "", "LeadSource"},
		{"Status", "Status", "", "", ""},
		{"Street", "Street", "MailingStreet", "BillingStreet", ""},
		{"City", "City", "MailingCity", "BillingCity", ""},
		{"State", "State", "MailingState", "BillingState", ""},
		{"PostalCode", "PostalCode", "MailingPostalCode", "BillingPostalCode", ""},
		{"Country", "Country", "MailingCountry", "BillingCountry", ""},
		{"Description", "Description", "Description", "", ""},
		{"HasOptedOutOfEmail", "HasOptedOutOfEmail", "HasOptedOutOfEmail", "", ""},
		{"DoNotCall", "DoNotCall", "DoNotCall", "", ""},
		{"", "", "Department", "", ""},
		{"", "", "Birthdate", "", ""},
		{"", "", "", "Type", ""},
		{"", "", "", "Description", ""},
		{"", "", "", "", "Name"},
		{"", "", "", "", "StageName"},
		{"", "", "", "", "CloseDate"},
		{"", "", "", "", "Amount"},
	},
	"zoho": {
		{"FirstName", "First_Name", "First_Name", "", ""},
		{"LastName", "Last_Name", "Last_Name", "", ""},
		{"Salutation", "Salutation", "Salutation", "", ""},
		{"Title", "Designation", "Title", "", ""},
		{"Email", "Email", "Email", "", ""},
		{"Phone", "Phone", "Phone", "Phone", ""},
		{"MobilePhone", "Mobile", "Mobile", "", ""},
		{"Fax", "Fax", "Fax", "Fax", ""},
		{"Company", "Company", "", "Account_Name", ""},
		{"Website", "Website", "", "Website", ""},
		{"Industry", "Industry", "", "Industry", ""},
		{"AnnualRevenue", "Annual_Revenue", "", "Annual_Revenue", ""},
		{"NumberOfEmployees", "No_of_Employees", "", "Employees", ""},
		{"Rating", "Rating", "", "Rating", ""},
		{"LeadSource", "Lead_Source", "Lead_Source", "", "Lead_Source"},
		{"Status", "Lead_Status", "", "", ""},
		{"Street", "Street", "Mailing_Street", "Billing_Street", ""},
		{"City", "City", "Mailing_City", "Billing_City", ""},
		{"State", "State", "Mailing_State", "Billing_State", ""},
		{"PostalCode", "Zip_Code", "Mailing_Zip", "Billing_Code", ""},
		{"Country", "Country", "Mailing_Country", "Billing_Country", ""},
		{"Description", "Description", "Description", "", ""},
		{"HasOptedOutOfEmail", "Email_Opt_Out", "Email_Opt_Out", "", ""},
		{"", "Secondary_Email", "Secondary_Email", "", ""},
		{"", "", "Department", "", ""},
		{"", "", "", "Account_Type", ""},
		{"", "", "", "Description", ""},
		{"", "", "", "", "Deal_Name"},
		{"", "", "", "", "Stage"},
		{"", "", "", "", "Closing_Date"},
		{"", "", "", "", "Amount"},
	},
	"hubspot": {
		{"FirstName", "firstname", "firstname", "", ""},
		{"LastName", "lastname", "lastname", "", ""},
		{"Salutation", "salutation", "salutation", "", ""},
		{"Title", "jobtitle", "jobtitle", "", ""},
		{"Email", "email", "email", "", ""},
		{"Phone", "phone", "phone", "phone", ""},
		{"MobilePhone", "mobilephone", "mobilephone", "", ""},
		{"Fax", "fax", "fax", "", ""},
		// HubSpot contacts keep a company name of their own beside the
		// association.
		{"Company", "company", "company", "name", ""},
		{"Website", "website", "website", "website", ""},
		{"", "", "", "domain", ""},
		{"Industry", "industry", "", "industry", ""},
		{"AnnualRevenue", "annualrevenue", "", "annualrevenue", ""},
		{"NumberOfEmployees", "numemployees", "", "numberofemployees", ""},
		{"Status", "hs_lead_status", "hs_lead_status", "", ""},
		{"Street", "address", "address", "address", ""},
		{"City", "city", "city", "city", ""},
		{"State", "state", "state", "state", ""},
		{"PostalCode", "zip", "zip", "zip", ""},
		{"Country", "country", "country", "country", ""},
		{"", "lifecyclestage", "lifecyclestage", "lifecyclestage", ""},
		{"", "", "", "description", ""},
		{"", "", "", "", "dealname"},
		{"", "", "", "", "dealstage"},
		{"", "", "", "", "pipeline"},
		{"", "", "", "", "closedate"},
		{"", "", "", "", "amount"},
	},
	"dynamics": {
		{"FirstName", "firstname", "firstname", "", ""},
		{"LastName", "lastname", "lastname", "", ""},
		{"Salutation", "salutation", "salutation", "", ""},
		{"Title", "jobtitle", "jobtitle", "", ""},
		{"Email", "emailaddress1", "emailaddress1", "", ""},
		{"Phone", "telephone1", "telephone1", "telephone1", ""},
		{"MobilePhone", "mobilephone", "mobilephone", "", ""},
		{"Fax", "fax", "fax", "fax", ""},
		{"Company", "companyname", "", "name", ""},
		{"Website", "websiteurl", "", "websiteurl", ""},
		{"Industry", "industrycode", "", "industrycode", ""},
		{"AnnualRevenue", "revenue", "", "revenue", ""},
		{"NumberOfEmployees", "numberofemployees", "", "numberofemployees", ""},
		{"LeadSource", "leadsourcecode", "leadsourcecode", "", ""},
		{"Street", "address1_line1", "address1_line1", "address1_line1", ""},
		{"City", "address1_city", "address1_city", "address1_city", ""},
		{"State", "address1_stateorprovince", "address1_stateorprovince", "address1_stateorprovince", ""},
		{"PostalCode", "address1_postalcode", "address1_postalcode", "address1_postalcode", ""},
		{"Country", "address1_country", "address1_country", "address1_country", ""},
		{"Description", "description", "description", "", "description"},
		{"HasOptedOutOfEmail", "donotemail", "donotemail", "", ""},
		{"DoNotCall", "donotphone", "donotphone", "", ""},
		{"", "subject", "", "", ""},
		{"", "", "", "", "name"},
		{"", "emailaddress2", "emailaddress2", "", ""},
		{"", "", "department", "", ""},
		{"", "", "", "", "estimatedvalue"},
		{"", "", "", "", "estimatedclosedate"},
	},
}

// Per-CRM names of the conversion's own fields: the lead's company, the
// account's name, the contact's account link, the converted-lead flag, and
// the system created and modified timestamps every record carries.
var modelLinks = map[string][6]string{
	"salesforce": {"Company", "Name", "AccountId", "IsConverted", "CreatedDate", "LastModifiedDate"},
	"zoho":       {"Company", "Account_Name", "Account_Name", "", "Created_Time", "Modified_Time"},
	"hubspot":    {"company", "name", "associatedcompanyid", "", "createdate", "lastmodifieddate"},
	"dynamics":   {"companyname", "name", "parentcustomerid", "", "createdon", "modifiedon"},
}

// Model returns the field model of a CRM profile; false for generic (no
// model: every field carries over) and unknown names.
func Model(crm string) (FieldModel, bool) {
	rows, ok := modelRows[crm]
	if !ok {
		return FieldModel{}, false
	}
	l := modelLinks[crm]
	m := FieldModel{
		CRM: crm, ContactFields: record.FieldMap{}, AccountFields: map[string]string{}, OpportunityFields: map[string]string{},
		AccountField: l[0], AccountName: l[1], ContactAccount: l[2], Converted: l[3], Created: l[4], Modified: l[5],
		Canonical: map[string]string{},
	}
	add := func(list *[]string, s string) {
		if s != "" && !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	for _, r := range rows {
		add(&m.Lead, r.lead)
		add(&m.Contact, r.contact)
		add(&m.Account, r.account)
		add(&m.Opportunity, r.opportunity)
		if r.canonical != "" {
			m.Canonical[r.canonical] = r.lead
		}
		if r.lead == "" {
			continue
		}
		if r.contact != "" && r.contact != r.lead {
			m.ContactFields[r.contact] = r.lead
		}
		if r.account != "" && r.lead != m.AccountField {
			m.AccountFields[r.lead] = r.account
		}
		if r.opportunity != "" {
			m.OpportunityFields[r.lead] = r.opportunity
		}
	}
	add(&m.Contact, m.ContactAccount)
	for _, list := range []*[]string{&m.Lead, &m.Contact, &m.Account, &m.Opportunity} {
		slices.Sort(*list)
	}
	return m, true
}

// ContactFieldsFor returns the contact map of a tenant: the CRM model's
// default mappings with the configured ones on top. A configured entry
// replaces the model's entry for the same contact field or the same lead
// field, so `MailingCity: City2` moves City's mapping rather than mapping
// City twice. Idempotent: applying it to its own result changes nothing.
func ContactFieldsFor(crm string, configured record.FieldMap) record.FieldMap {
	m, ok := Model(crm)
	if !ok {
		return configured
	}
	out := make(record.FieldMap, len(m.ContactFields)+len(configured))
	leads := make(map[string]bool, len(configured))
	for _, l := range configured {
		leads[l] = true
	}
	for c, l := range m.ContactFields {
		if _, set := configured[c]; !set && !leads[l] {
			out[c] = l
		}
	}
	maps.Copy(out, configured)
	return out
}

// mappingFor is a created record's lead -> field mapping: the model's with
// the configured one on top ("-" in the config drops a field the model
// maps).
func mappingFor(model, configured map[string]string) map[string]string {
	out := make(map[string]string, len(model)+len(configured))
	maps.Copy(out, model)
	maps.Copy(out, configured)
	return out
}
