package knowledge

import "strings"

// A Provider is a popular mail domain: a place people really send mail to,
// so a lookalike of it is suspicious and the domain itself never is.
type Provider struct {
	Domain string
	// Tier orders popularity: 1 global giants, 2 large national providers,
	// 3 regional providers and legitimate near-neighbours of the others.
	Tier int
}

// Weight is the prior that a sender meant this provider, in (0,1].
func (p Provider) Weight() float64 {
	switch p.Tier {
	case 1:
		return 1
	case 2:
		return 0.85
	default:
		return 0.7
	}
}

// Providers returns the built-in provider list. Sources: providers' own
// published domain lists and public mail-provider market share figures;
// legitimate near-neighbours are listed so they are never mistaken for typos
// of one another (ymail.com, gmx.com, mail.com, me.com, web.com …), with the
// large organisations whose short domains sit one slip from a provider
// (gm.com and gmc.com, General Motors, next to gmx.com), and the corporate
// domains of providers whose subscribers' mail lives elsewhere (comcast.com
// beside comcast.net).
func Providers() []Provider {
	var out []Provider
	for tier, block := range []string{tier1, tier2, tier3} {
		for _, d := range strings.Fields(block) {
			out = append(out, Provider{Domain: d, Tier: tier + 1})
		}
	}
	return out
}

// Families are brands that run the same mail service under many country
// domains (yahoo.com.ar, outlook.sk, gmx.at). A brand's domain under a real
// country suffix is presumed legitimate even when it is not listed, unless the
// suffix is a classic TLD confusion of the brand's main TLD (outlook.co).
var Families = []string{"yahoo", "hotmail", "outlook", "live", "gmx", "aol", "yandex", "msn", "windowslive", "icloud", "orange", "vodafone", "tiscali", "libero", "terra", "rediffmail", "zoho", "mail"}

const tier1 = `
gmail.com googlemail.com yahoo.com hotmail.com outlook.com live.com msn.com aol.com
icloud.com me.com mac.com protonmail.com proton.me yandex.ru mail.ru qq.com 163.com
gmx.com gmx.net gmx.de web.de comcast.net
`

const tier2 = `
yahoo.co.uk yahoo.fr yahoo.de yahoo.it yahoo.es yahoo.ca yahoo.com.au yahoo.co.in yahoo.co.jp
yahoo.com.br yahoo.com.ar yahoo.com.mx yahoo.co.id yahoo.com.sg yahoo.com.ph yahoo.in
yahoo.gr yahoo.ie yahoo.co.nz yahoo.com.tw yahoo.com.hk yahoo.se yahoo.dk yahoo.no yahoo.pl
yahoo.ro yahoo.com.vn yahoo.co.th yahoo.nl yahoo.be yahoo.at yahoo.ch yahoo.fi ymail.com rocketmail.com
hotmail.co.uk hotmail.fr hotmail.de hotmail.it hotmail.es hotmail.ca hotmail.be hotmail.nl
hotmail.com.br hotmail.com.ar hotmail.com.mx hotmail.se hotmail.no hotmail.dk hotmail.fi
hotmail.gr hotmail.co.jp hotmail.com.au hotmail.ch hotmail.at hotmail.co.nz hotmail.co.za
hotmail.com.tr hotmail.cl hotmail.co.th hotmail.my hotmail.ru hotmail.sg
outlook.fr outlook.de outlook.it outlook.es outlook.jp outlook.com.br outlook.be outlook.cl
outlook.com.ar outlook.com.au outlook.at outlook.dk outlook.ie outlook.kr outlook.pt outlook.sa
outlook.sg outlook.cz outlook.com.gr outlook.co.il outlook.co.id outlook.co.th outlook.com.tr
outlook.com.vn outlook.my outlook.ph outlook.in outlook.hu outlook.lv outlook.sk outlook.nl
outlook.ch outlook.se outlook.no outlook.fi outlook.pl outlook.ro outlook.co.nz outlook.co.uk
live.co.uk live.fr live.de live.it live.nl live.be live.ca live.com.au live.com.mx live.com.ar
live.cl live.com.pt live.se live.dk live.no live.ie live.at live.ch live.jp live.ru live.in
live.hk live.cn live.com.sg live.co.za live.com.my live.com.ph live.fi live.com.br live.co.kr
aol.co.uk aol.fr aol.de aol.it aol.es aol.ca aol.com.au aol.nl aol.be aol.jp aim.com
windowslive.com passport.com
protonmail.ch pm.me tutanota.com tutanota.de tuta.io tuta.com tutamail.com keemail.me
gmx.at gmx.ch gmx.fr gmx.co.uk gmx.us gmx.es gmx.it gmx.li gmx.info gmx.org gmx.eu
t-online.de freenet.de arcor.de mail.de posteo.de posteo.net mailbox.org online.de
email.de vodafone.de 1und1.de kabelmail.de
mail.com email.com usa.com post.com europe.com consultant.com engineer.com myself.com
zoho.com zohomail.com zohomail.eu zoho.eu yandex.com ya.ru yandex.ua yandex.by yandex.kz yandex.com.tr
inbox.ru list.ru bk.ru internet.ru rambler.ru lenta.ru autorambler.ru ro.ru
126.com yeah.net foxmail.com sina.com sina.cn sohu.com 139.com 189.cn aliyun.com 21cn.com tom.com
naver.com daum.net hanmail.net nate.com kakao.com
orange.fr wanadoo.fr free.fr sfr.fr neuf.fr laposte.net bbox.fr
libero.it virgilio.it alice.it tin.it tiscali.it fastwebnet.it email.it
seznam.cz email.cz centrum.cz wp.pl o2.pl onet.pl interia.pl op.pl
btinternet.com virginmedia.com ntlworld.com blueyonder.co.uk talktalk.net sky.com
verizon.net att.net sbcglobal.net bellsouth.net charter.net cox.net earthlink.net
optonline.net frontier.com shaw.ca rogers.com sympatico.ca bell.net videotron.ca telus.net
bigpond.com bigpond.net.au optusnet.com.au uol.com.br bol.com.br terra.com.br globo.com ig.com.br
rediffmail.com fastmail.com fastmail.fm hushmail.com icloud.com.cn
`

const tier3 = `
juno.com netzero.net netzero.com optimum.net frontiernet.net windstream.net centurylink.net
embarqmail.com q.com roadrunner.com rr.com twc.com mindspring.com prodigy.net pacbell.net
ameritech.net swbell.net wowway.com suddenlink.net mediacombb.net cableone.net rcn.com
excite.com lycos.com usa.net mailfence.com runbox.com hey.com duck.com inbox.com
cogeco.ca eastlink.ca sasktel.net mts.net xplornet.com
iinet.net.au tpg.com.au internode.on.net westnet.com.au adam.com.au ozemail.com.au dodo.com.au
xtra.co.nz slingshot.co.nz orcon.net.nz vodafone.co.nz clear.net.nz
btopenworld.com btconnect.com virgin.net tiscali.co.uk o2.co.uk orange.net plus.com
eircom.net eir.ie
skynet.be telenet.be proximus.be scarlet.be
home.nl planet.nl ziggo.nl kpnmail.nl kpnplanet.nl xs4all.nl chello.nl hetnet.nl quicknet.nl telfort.nl upcmail.nl
bluewin.ch hispeed.ch sunrise.ch swissonline.ch
chello.at aon.at a1.net utanet.at
club-internet.fr aliceadsl.fr numericable.fr voila.fr cegetel.net
inwind.it iol.it aruba.it
terra.es telefonica.net movistar.es ono.com
sapo.pt clix.pt netcabo.pt
telia.com comhem.se bredband.net spray.se bahnhof.se
online.no start.no frisurf.no broadpark.no
jubii.dk mail.dk ofir.dk stofanet.dk get2net.dk sol.dk tdcadsl.dk
suomi24.fi luukku.com kolumbus.fi elisanet.fi
vp.pl go2.pl tlen.pl gazeta.pl poczta.onet.pl autograf.pl buziaczek.pl
atlas.cz post.cz volny.cz quick.cz
azet.sk centrum.sk zoznam.sk post.sk
freemail.hu citromail.hu t-online.hu
abv.bg mail.bg dir.bg
otenet.gr forthnet.gr hol.gr
inbox.lv inbox.lt one.lt mail.ee hot.ee
net.hr vip.hr t-com.hr
ukr.net i.ua meta.ua bigmir.net
walla.co.il walla.com netvision.net.il bezeqint.net 012.net.il
mynet.com superonline.com
oi.com.br r7.com zipmail.com.br globomail.com outlook.com.br
speedy.com.ar fibertel.com.ar arnet.com.ar prodigy.net.mx
sify.com indiatimes.com vsnl.net
docomo.ne.jp ezweb.ne.jp softbank.ne.jp i.softbank.jp au.com nifty.com biglobe.ne.jp ocn.ne.jp so-net.ne.jp
hanmir.com korea.com
singnet.com.sg pacific.net.sg
telkomsa.net webmail.co.za mweb.co.za vodamail.co.za
yopmail.com mailinator.com guerrillamail.com
gmx.ca gmx.net.au
riseup.net disroot.org autistici.org
web.com google.com apple.com microsoft.com amazon.com facebook.com
gm.com gmc.com
comcast.com verizon.com att.com cox.com charter.com
`
