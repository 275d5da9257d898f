package matcher

import "strings"

// nicknames lists, per full first name, the short forms people use in CRM
// forms. Only nicknames with one plausible full name are listed: an
// ambiguous one ("al": albert, alan, alfred) would merge different people.
var nicknames = map[string]string{
	"abigail":     "abby abbie",
	"alexander":   "xander",
	"alexandra":   "lexi",
	"andrew":      "andy drew",
	"anthony":     "tony",
	"barbara":     "barb babs",
	"benjamin":    "ben benji benny",
	"catherine":   "cathy kate katie cat",
	"charles":     "charlie chuck chas",
	"christopher": "topher",
	"daniel":      "dan danny",
	"david":       "dave davey",
	"deborah":     "deb debbie debby",
	"donald":      "don donnie",
	"dorothy":     "dot dottie",
	"edward":      "ed eddie ned",
	"elizabeth":   "liz lizzie beth betsy betty libby",
	"frederick":   "fred freddie",
	"gregory":     "greg",
	"harold":      "hal harry",
	"jacqueline":  "jacqui",
	"james":       "jim jimmy",
	"jennifer":    "jen jenny jenn",
	"jeffrey":     "jeff",
	"jonathan":    "jon",
	"joseph":      "joe joey",
	"joshua":      "josh",
	"katherine":   "kathy",
	"kenneth":     "ken kenny",
	"lawrence":    "larry",
	"leonard":     "lenny",
	"margaret":    "maggie meg peggy marge",
	"matthew":     "matt",
	"michael":     "mike mikey mick",
	"nicholas":    "nick nicky",
	"patricia":    "patty tricia trish",
	"peter":       "pete",
	"philip":      "phil",
	"rebecca":     "becky becca",
	"richard":     "rick ricky dick rich richie",
	"robert":      "bob bobby rob robbie",
	"ronald":      "ron ronnie",
	"samantha":    "sammie",
	"stephen":     "steve stevie",
	"susan":       "sue susie suzy",
	"theodore":    "theo",
	"thomas":      "tom tommy",
	"timothy":     "tim timmy",
	"victoria":    "vicky tori",
	"walter":      "walt wally",
	"william":     "bill billy will willy",
	"zachary":     "zach zack",
}

// nicknameOf maps a nickname to its full name.
var nicknameOf = func() map[string]string {
	m := map[string]string{}
	for full, nicks := range nicknames {
		for _, n := range strings.Fields(nicks) {
			m[n] = full
		}
	}
	// Spelling variants of one full name share its canonical form.
	m["steven"] = "stephen"
	return m
}()
