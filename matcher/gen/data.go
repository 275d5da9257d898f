package gen

// Name, company and place pools. They are large enough that common names
// collide across companies (as in real CRMs) and small enough that the
// generator stays a single file of data.

var firstNames = []string{
	"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
	"Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew", "Paul", "Joshua",
	"Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey", "Ryan",
	"Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon",
	"Benjamin", "Samuel", "Gregory", "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry",
	"Tyler", "Aaron", "Jose", "Adam", "Nathan", "Henry", "Zachary", "Douglas", "Peter", "Kyle",
	"Noah", "Ethan", "Jeremy", "Walter", "Christian", "Keith", "Roger", "Terry", "Austin", "Sean",
	"Gerald", "Carl", "Harold", "Dylan", "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy",
	"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
	"Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
	"Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia",
	"Amy", "Kathleen", "Angela", "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha",
	"Katherine", "Christine", "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather",
	"Diane", "Olivia", "Julie", "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina",
	"Joan", "Evelyn", "Judith", "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison",
	"José", "Zoë", "Renée", "Björn", "Søren", "François", "Jürgen", "Ana", "Chloé", "Łukasz",
	"Priya", "Wei", "Hiroshi", "Aisha", "Mohammed", "Fatima", "Raj", "Mei", "Yuki", "Olga",
}

var lastNames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
	"Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
	"Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
	"Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
	"Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
	"Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
	"Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
	"Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
	"Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
	"Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham",
	"Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
	"Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
	"Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen",
	"Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter",
	"Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Muñoz", "Hunt", "Hicks",
	"Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox",
	"Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens",
	"Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins",
	"O'Brien", "O'Connor", "McCarthy", "Van der Berg", "De Souza", "Müller", "Schröder", "Dubois", "Lefèvre", "Kowalski",
	"Nowak", "Yamamoto", "Tanaka", "Singh", "Kumar", "Wang", "Li", "Zhang", "Ivanov", "Andersson",
	"Johansson", "Larsen", "Rossi", "Bianchi", "Ferrari", "Santos", "Oliveira", "Costa", "Haddad", "Cohen",
}

// nicknames are the short forms a duplicate may use; matcher's nickname
// table covers most of them, a few ("Jack" for John) it deliberately does not.
var nicknames = map[string][]string{
	"James": {"Jim", "Jimmy"}, "Robert": {"Bob", "Rob", "Bobby"}, "John": {"Jack", "Johnny"},
	"Michael": {"Mike", "Mick"}, "David": {"Dave"}, "William": {"Bill", "Will", "Billy"},
	"Richard": {"Rick", "Dick", "Rich"}, "Joseph": {"Joe"}, "Thomas": {"Tom", "Tommy"},
	"Christopher": {"Chris"}, "Charles": {"Charlie", "Chuck"}, "Daniel": {"Dan", "Danny"},
	"Matthew": {"Matt"}, "Anthony": {"Tony"}, "Donald": {"Don"}, "Steven": {"Steve"},
	"Andrew": {"Andy", "Drew"}, "Joshua": {"Josh"}, "Kenneth": {"Ken"}, "Timothy": {"Tim"},
	"Ronald": {"Ron"}, "Edward": {"Ed", "Eddie"}, "Jeffrey": {"Jeff"}, "Nicholas": {"Nick"},
	"Jonathan": {"Jon"}, "Stephen": {"Steve"}, "Larry": {"Lawrence"}, "Benjamin": {"Ben"},
	"Samuel": {"Sam"}, "Gregory": {"Greg"}, "Alexander": {"Alex"}, "Patrick": {"Pat"},
	"Zachary": {"Zach"}, "Peter": {"Pete"}, "Walter": {"Walt"}, "Lawrence": {"Larry"},
	"Patricia": {"Patty", "Trish"}, "Jennifer": {"Jen", "Jenny"}, "Elizabeth": {"Liz", "Beth", "Betty"},
	"Barbara": {"Barb"}, "Susan": {"Sue"}, "Margaret": {"Maggie", "Peggy"}, "Deborah": {"Debbie", "Deb"},
	"Rebecca": {"Becky"}, "Katherine": {"Kathy"}, "Catherine": {"Cathy", "Kate"}, "Victoria": {"Vicky"},
	"Samantha": {"Sam"}, "Jacqueline": {"Jacqui"}, "Dorothy": {"Dot"},
}

var companyStems = []string{
	"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay", "Soylent",
	"Cyberdyne", "Tyrell", "Massive Dynamic", "Gringotts", "Oscorp", "Aperture", "Black Mesa", "Monarch", "Dunder Mifflin", "Pied Piper",
	"Blue Ridge", "Northwind", "Contoso", "Fabrikam", "Adventure Works", "Tailspin", "Litware", "Proseware", "Woodgrove", "Lucerne",
	"Silver Creek", "Red Rock", "Summit Peak", "Harbor Light", "Pine Valley", "Iron Gate", "Golden Gate", "Clearwater", "Bright Path", "Cedar Point",
	"Atlas", "Apex", "Vertex", "Nimbus", "Quantum", "Helix", "Orion", "Zenith", "Polaris", "Nova",
	"Keystone", "Pinnacle", "Horizon", "Evergreen", "Riverside", "Lakeshore", "Highland", "Meadowbrook", "Stonebridge", "Fairview",
	"Brightwave", "Cloudnine", "Datapoint", "Netcore", "Bytewise", "Codeworks", "Logicly", "Sparkline", "Streamline", "Teknova",
	"Greenleaf", "Sunrise", "Moonlight", "Starlight", "Blue Ocean", "Deep Blue", "Red Oak", "White Pine", "Black Bear", "Grey Wolf",
	"Johnson & Sons", "Miller Brothers", "Smith and Partners", "Baker Street", "Kingston", "Hamilton", "Wellington", "Ashford", "Bradford", "Camden",
	"Müller Technik", "Société Générale Conseil", "Nordisk Data", "Sakura Systems", "Lotus Trading", "Andes Mining", "Sahara Solar", "Alpine Logistics", "Baltic Shipping", "Danube Foods",
	"First National", "United Freight", "General Widgets", "Allied Health", "Premier Dental", "Metro Realty", "City Bakery", "Coastal Insurance", "Prime Motors", "Royal Hotels",
	"Vista Labs", "Echo Media", "Pixel Forge", "Signal Hill", "Granite State", "Copper Canyon", "Maple Leaf", "Thunderbird", "Falcon Aero", "Eagle Eye",
}

var industries = []string{"Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Real Estate", "Logistics", "Energy", "Media", "Hospitality", "Consulting"}

var companyWords = []string{"Solutions", "Systems", "Technologies", "Consulting", "Partners", "Industries", "Labs", "Services", "Group", "Holdings", "Software", "Analytics"}

// legal forms and how duplicates may spell them.
var legalForms = [][]string{
	{"Inc.", "Inc", "Incorporated", ", Inc.", "INC"},
	{"LLC", "L.L.C.", "llc", ", LLC"},
	{"Ltd", "Ltd.", "Limited", "LTD"},
	{"Corp.", "Corp", "Corporation"},
	{"GmbH", "GMBH", "Gmbh"},
	{"Co.", "Company", "Co"},
	{"PLC", "plc"},
}

var titles = []string{
	"CEO", "CTO", "CFO", "VP Sales", "VP Marketing", "Head of Operations", "IT Manager", "Procurement Manager",
	"Sales Director", "Marketing Manager", "Software Engineer", "Account Executive", "Office Manager", "Founder",
	"Product Manager", "HR Director", "Purchasing Agent", "Consultant", "Analyst", "Director of IT",
}

var leadSources = []string{"Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Advertisement", "Cold Call", "Webinar", "Employee Referral", "Chat", "Email Campaign"}

var leadStatuses = []string{"New", "Contacted", "Working", "Qualified", "Nurturing", "Unqualified"}

// roleLocals are the team addresses some people give instead of their own.
var roleLocals = []string{"info", "sales", "office", "contact", "hello"}

var freeMail = []string{"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com"}

var streetNames = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Blvd", "Elm St", "Washington Ave", "Lake Rd", "Hill St", "Sunset Blvd", "Broadway", "Market St", "Church St", "River Rd", "Highland Ave"}

type place struct{ city, state, zip, area string }

var places = []place{
	{"New York", "NY", "100", "212"}, {"Brooklyn", "NY", "112", "718"}, {"Los Angeles", "CA", "900", "213"},
	{"San Francisco", "CA", "941", "415"}, {"San Diego", "CA", "921", "619"}, {"Chicago", "IL", "606", "312"},
	{"Houston", "TX", "770", "713"}, {"Dallas", "TX", "752", "214"}, {"Austin", "TX", "787", "512"},
	{"Phoenix", "AZ", "850", "602"}, {"Philadelphia", "PA", "191", "215"}, {"Seattle", "WA", "981", "206"},
	{"Denver", "CO", "802", "303"}, {"Boston", "MA", "021", "617"}, {"Atlanta", "GA", "303", "404"},
	{"Miami", "FL", "331", "305"}, {"Portland", "OR", "972", "503"}, {"Minneapolis", "MN", "554", "612"},
	{"Detroit", "MI", "482", "313"}, {"Nashville", "TN", "372", "615"},
}
