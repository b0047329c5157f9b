"""Text the sample production history is made of: tickets, order messages, documents, PII.

Each builder takes a `random.Random` and returns text plus its ground-truth
label, so the generator stays about structure (sessions, traces, failures) and
this module about wording. Wording is varied on purpose (templates, fillers,
optional greetings and signatures, occasional long pasted context) and some of
it carries personal data (emails, phone numbers, Luhn-valid card numbers, IP
addresses) so redaction downstream has real work. Nothing here is random
without the caller's `rng`: same rng state, same text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Chloe",
    "Daniel",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Nikolai",
    "Olivia",
    "Pedro",
    "Qing",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
)
LAST_NAMES = (
    "Garcia",
    "Smith",
    "Nakamura",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Haddad",
    "Nguyen",
    "Johansson",
    "Patel",
    "Silva",
    "Murphy",
    "Fischer",
    "Tanaka",
)
EMAIL_DOMAINS = ("example.com", "mail.example.org", "example.net", "corp.example.co.uk", "inbox.example.de")
PHONE_FORMATS = (
    "+1 415-555-{a:04d}",
    "(212) 555-{a:04d}",
    "+44 20 7946 {a:04d}",
    "+49 30 5550{a:04d}",
    "+61 2 5550 {a:04d}",
)
IP_PREFIXES = ("203.0.113.", "198.51.100.", "192.0.2.", "81.2.69.", "91.198.174.")
BROWSERS = ("Chrome 126", "Firefox 127", "Safari 17", "Edge 125", "the iOS app", "the Android app")
COUNTRIES = ("Canada", "Germany", "Japan", "Brazil", "Australia", "Ireland", "Mexico")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
PLANS = ("pro", "team", "enterprise", "starter")

PII_KINDS = ("email", "phone", "card", "ip")


@dataclass
class Text:
    """Generated text with the PII kinds it contains (for ground truth)."""

    text: str
    pii: set[str] = field(default_factory=set)


def luhn_card(rng: random.Random) -> str:
    """A 16-digit Visa-like number whose Luhn check digit is valid."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    # Luhn: from the right, the check digit position is 1; double every second digit left of it.
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    digits.append((10 - total % 10) % 10)
    raw = "".join(map(str, digits))
    style = rng.randrange(3)
    if style == 0:
        return " ".join(raw[i : i + 4] for i in range(0, 16, 4))
    if style == 1:
        return "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    return raw


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return len(digits) >= 13 and total % 10 == 0


def person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    sep = rng.choice((".", "_", ""))
    email = (
        f"{first.lower()}{sep}{last.lower()}{rng.choice(('', str(rng.randrange(10, 99))))}@{rng.choice(EMAIL_DOMAINS)}"
    )
    return f"{first} {last}", email


def phone(rng: random.Random) -> str:
    return rng.choice(PHONE_FORMATS).format(a=rng.randrange(100, 9999))


def ip_address(rng: random.Random) -> str:
    return rng.choice(IP_PREFIXES) + str(rng.randrange(1, 254))


class _Filler:
    """Fills `{slot}` placeholders, recording which PII kinds were used."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pii: set[str] = set()
        self.name, self.email_value = person(rng)

    def __call__(self, template: str, **fixed: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: fixed.get(m.group(1)) or self.slot(m.group(1)), template)

    def slot(self, name: str) -> str:
        rng = self.rng
        if name == "email":
            self.pii.add("email")
            return self.email_value
        if name == "phone":
            self.pii.add("phone")
            return phone(rng)
        if name == "card":
            self.pii.add("card")
            return luhn_card(rng)
        if name == "ip":
            self.pii.add("ip")
            return ip_address(rng)
        if name == "name":
            return self.name
        if name == "first":
            return self.name.split()[0]
        if name == "last4":
            return f"{rng.randrange(10000):04d}"
        if name == "browser":
            return rng.choice(BROWSERS)
        if name == "country":
            return rng.choice(COUNTRIES)
        if name == "month":
            return rng.choice(MONTHS)
        if name == "plan":
            return rng.choice(PLANS)
        if name == "amount":
            return str(rng.choice((9, 12, 19, 29, 49, 99, 149, 299, 499)))
        if name == "code":
            return rng.choice(("E1042", "500", "ERR_SYNC_TIMEOUT", "403", "0x80070005", "SSL_HANDSHAKE"))
        if name == "days":
            return str(rng.randrange(3, 21))
        if name == "tracking":
            # Carrier tracking numbers: long digit runs that are NOT card numbers (redaction must keep them).
            return rng.choice(("1Z", "JD", "TBA")) + "".join(str(rng.randrange(10)) for _ in range(12))
        if name == "street":
            return f"{rng.randrange(1, 250)} {rng.choice(('Elm', 'Harbour', 'Mill', 'Station', 'King'))} {rng.choice(('Street', 'Road', 'Lane'))}"
        if name == "team_size":
            return str(rng.choice((3, 5, 12, 40, 150)))
        raise KeyError(name)


GREETINGS = ("", "", "Hi,", "Hello,", "Hi team,", "Hey there,", "Good morning,", "Dear support,")
SIGNOFFS = (
    "",
    "",
    "Thanks",
    "Thanks!",
    "Regards, {name}",
    "Thanks, {name} ({email})",
    "You can reach me at {phone}.",
    "Best, {first}",
    "My account email is {email}.",
)
URGENCY = ("", "", "", "This is urgent.", "We have a deadline today.", "Please help asap.")

# Support tickets by true route (the ground-truth label). Wording deliberately
# includes phrasings the production keyword rules miss (2FA, sign in, plan
# changes, "ship") so a share of production routes are wrong and get corrected.
TICKETS: dict[str, tuple[str, ...]] = {
    "account_recovery": (
        "I forgot my password and the reset email never arrives. My login is {email}.",
        "My account is locked out after too many attempts, can you unlock it?",
        "I lost my phone and can't get the 2FA code anymore. How do I get back into my account?",
        "The verification code you send to {phone} never arrives so I can't sign in.",
        "I changed phones and my authenticator app no longer has your entry; I'm stuck at the two-factor screen.",
        "Can't log in since yesterday, it says my password is wrong but I haven't changed it.",
        "Someone changed my password without me knowing. I got an alert about a sign-in from {ip}.",
        "Password reset link says it expired every time I click it.",
        "I get an error on the two-factor page after entering the code.",
        "My colleague left and we need access to the admin account registered to {email}.",
        "Sign in keeps looping back to the start page after I type my password. Tried from {ip} and from home.",
    ),
    "billing": (
        "I was charged twice for my {plan} plan this month. Card ending {last4}.",
        "Please send me the invoice for {month}; our accounting needs it.",
        "Why did my subscription renew at ${amount}? I thought I cancelled.",
        "I need a refund for the annual plan, I only used it for a week.",
        "The payment failed with my card {card} but the money was taken anyway.",
        "Can you update the company name on our receipts?",
        "How much would it cost to move from {plan} to enterprise for {team_size} people?",
        "I see a charge of ${amount} I don't recognise on my statement.",
        "Our billing shows {team_size} seats but we only use a few of them.",
        "Please use card {card} for future payments and remove the old one.",
    ),
    "technical": (
        "The dashboard crashes whenever I open the reports tab in {browser}.",
        "Getting error {code} when exporting to CSV.",
        "Sync is not working since the last update; my files are stuck.",
        "There's a bug in the mobile app: notifications appear twice.",
        "The webhook we configured fails with a timeout error after 30 seconds.",
        "Pages load forever on {browser} and then show an error. My IP is {ip} if that helps.",
        "Uploads over 50 MB fail with error {code}.",
        "Search returns nothing for files I can see in the folder, looks broken.",
        "The calendar integration is not working since yesterday, no events get created.",
    ),
    "shipping": (
        "My package hasn't arrived, tracking number {tracking} shows no update for a week.",
        "Can you change the delivery address for my hardware key to {street}?",
        "The courier left the parcel at the wrong door.",
        "When will my security key ship? It has been {days} days.",
        "What are the shipping options to {country}?",
        "The tracking page says delivered but nothing came.",
        "Can the delivery of the replacement device go to my office instead?",
    ),
    "general": (
        "Do you offer a discount for non-profits?",
        "What are your support hours for customers in {country}?",
        "Can I add a colleague to my workspace?",
        "Is there a way to export my data before I close the account?",
        "Do you have a status page I can subscribe to?",
        "I'd like to give feedback about the new design, it's great.",
        "Where can I find your security documentation for our audit?",
        "Is there a mobile app for tablets?",
    ),
}
# What a customer means by a ticket: the route a support agent would pick (the sample world's
# ground truth). Simulated users of canary traffic react to answers that miss it.
INTENDED_ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "account_recovery",
        ("password", "locked out", "unlock", "2fa", "two-factor", "verification code", "authenticator", "sign in",
         "log in"),
    ),
    ("billing", ("invoice", "charge", "refund", "payment", "billing", "receipt", "subscription")),
    ("technical", ("error", "bug", "crash", "not working", "broken")),
    ("shipping", ("shipping", "tracking", "delivery", "package", "courier", "parcel")),
)  # fmt: skip


def intended_route(ticket: str) -> str:
    text = ticket.lower()
    return next((route for route, words in INTENDED_ROUTES if any(w in text for w in words)), "general")


TICKET_WEIGHTS = {"account_recovery": 0.26, "billing": 0.24, "technical": 0.22, "shipping": 0.12, "general": 0.16}

LONG_CONTEXT = (
    "For context, here is what happened so far.",
    "I already tried clearing the cache and using a private window.",
    "Your previous agent told me it would be fixed within a day, which did not happen.",
    "We are a team of {team_size} and this blocks everyone.",
    "I have attached screenshots to my earlier email from {email}.",
    "Our IT contact can be reached at {phone} during office hours.",
    "This started right after we changed our company domain.",
    "I'm writing from {country} so please mind the time difference.",
)


def support_ticket(rng: random.Random, route: str, long: bool) -> Text:
    fill = _Filler(rng)
    parts = [fill(rng.choice(GREETINGS)), fill(rng.choice(TICKETS[route]))]
    if long:
        context = list(LONG_CONTEXT)
        rng.shuffle(context)
        parts.extend(fill(s) for s in context[: rng.randrange(4, 8)])
    parts.extend((fill(rng.choice(URGENCY)), fill(rng.choice(SIGNOFFS))))
    return Text(" ".join(p for p in parts if p), fill.pii)


# Order agent. Reasons follow the simulator's extraction: the first of
# damaged | late | not_received found in the message, else "other"; each
# template holds at most one of those words and never "later"/"latest".
ORDER_STATUS = (
    "Where is my order {oid}?",
    "Any update on {oid}? It was supposed to arrive on Monday.",
    "Can you check the status of order {oid} please.",
    "Hi, I'd like to track {oid}, the website shows nothing.",
    "Has {oid} shipped yet? I need it for a trip.",
)
ORDER_REFUND = (
    ("Order {oid} arrived damaged, I'd like a refund of ${amount}.", "damaged"),
    ("My order {oid} came late and the party was over. Please refund the ${amount}.", "late"),
    ("I want my money back for {oid}, it's {amount} dollars and it never worked.", "other"),
    ("Refund please: {oid}, ${amount}, the box was damaged and the lamp broken.", "damaged"),
    ("{oid} was marked not_received by your own courier. Refund ${amount} to my card {card}.", "not_received"),
    ("Please reimburse ${amount} for {oid}, I returned it two weeks ago.", "other"),
    ("The shoes from {oid} are the wrong size, can I get a refund of ${amount}? Contact me at {email}.", "other"),
)
ORDER_NO_ID = (
    "I want to return something I bought, how does that work?",
    "My package never came, can you help?",
    "Can I send something back? I don't have the order number handy.",
    "My stuff still hasn't come?? Call me at {phone}.",
)
ORDER_GENERAL = (
    "What is your return policy?",
    "Do you ship to {country}?",
    "How long does a return take to process?",
    "Can I change the size after ordering?",
)
ORDER_FOLLOWUPS = (
    "Thanks. And can you confirm the address you have is {street}?",
    "Ok, what about my other question from before?",
    "Great, thanks for the quick help.",
    "Got it. Is there anything else I need to do?",
)


def order_id(rng: random.Random) -> str:
    return f"ORD-{rng.randrange(100000, 999999)}"


def order_message(rng: random.Random, kind: str, oid: str, amount: int) -> tuple[Text, str]:
    """A customer message of `kind` (status|refund|no_id|general|followup) and its refund reason."""
    fill = _Filler(rng)
    reason = "other"
    if kind == "status":
        body = fill(rng.choice(ORDER_STATUS), oid=oid)
    elif kind == "refund":
        template, reason = rng.choice(ORDER_REFUND)
        body = fill(template, oid=oid, amount=str(amount))
    elif kind == "no_id":
        body = fill(rng.choice(ORDER_NO_ID))
    elif kind == "general":
        body = fill(rng.choice(ORDER_GENERAL))
    else:
        body = fill(rng.choice(ORDER_FOLLOWUPS))
    greeting = fill(rng.choice(GREETINGS)) if kind != "followup" else ""
    text = f"{greeting} {body}".strip()
    return Text(text, fill.pii), reason


# Summarizer documents: sentence banks per document type; a document is a
# run of sentences, from a short note to a long report.
DOC_SENTENCES: dict[str, tuple[str, ...]] = {
    "meeting_notes": (
        "The weekly planning meeting covered the Q3 roadmap and hiring.",
        "{name} presented the churn analysis, which shows enterprise churn down to 2.1 percent.",
        "The team agreed to move the billing migration to the second week of {month}.",
        "Design will share three options for the onboarding flow by Friday.",
        "Support volume rose 14 percent after the pricing change.",
        "Action item: {first} to follow up with legal about the new data processing terms.",
        "The mobile release is blocked on the app store review.",
        "Budget for the offsite was approved at 18,000 dollars.",
        "Questions can be sent to {email} before the next session.",
        "The next meeting moves to Thursday because of the holiday.",
    ),
    "incident_report": (
        "On {month} 12 between 09:14 and 10:02 UTC the API returned elevated 5xx errors.",
        "The root cause was a connection pool exhaustion in the session service.",
        "About 7 percent of requests failed during the window, mostly in the EU region.",
        "The on-call engineer, {name}, rolled back the deployment at 09:48.",
        "Error rates returned to baseline twelve minutes after the rollback.",
        "Traffic from {ip} was briefly rate limited as a side effect.",
        "We will add a canary stage for the session service and alert on pool saturation.",
        "No customer data was lost or exposed.",
        "A follow-up review is scheduled with the platform team.",
        "Customers who contacted support were offered a service credit.",
    ),
    "customer_email": (
        "Hello, I am writing about our contract renewal for next year.",
        "We have been customers for three years and are mostly happy with the product.",
        "However, the recent outage cost our team a full day of work.",
        "We would like to discuss a discount or a credit before signing.",
        "Our procurement contact is {name}, reachable at {phone}.",
        "Please also send the updated security questionnaire to {email}.",
        "We plan to grow from 40 to 65 seats in the first quarter.",
        "A call next week would work best for us, ideally Tuesday afternoon.",
        "The invoice should be addressed to the Dublin office this time.",
        "Thank you for your help, we look forward to your proposal.",
    ),
    "product_update": (
        "This release introduces shared workspaces for teams.",
        "Admins can now require single sign-on for every member.",
        "Exports to CSV are up to four times faster for large projects.",
        "The old reports page will be retired at the end of {month}.",
        "Mobile users get offline mode for recently opened files.",
        "We fixed a bug where notifications were sent twice.",
        "Pricing for existing plans does not change with this release.",
        "Feedback is welcome in the community forum or at {email}.",
        "The API now supports pagination cursors on all list endpoints.",
    ),
    "policy": (
        "This policy applies to all employees and contractors.",
        "Company laptops must use full-disk encryption and automatic updates.",
        "Passwords must be stored in the approved password manager.",
        "Customer data may only be exported for an approved business purpose.",
        "Incidents must be reported to the security team within 24 hours.",
        "Access reviews happen every quarter and are signed off by managers.",
        "Exceptions require written approval from the security lead.",
        "Violations may lead to disciplinary action.",
        "Questions about this policy go to {name} in the security team.",
    ),
}


def document(rng: random.Random, doc_type: str) -> Text:
    fill = _Filler(rng)
    bank = DOC_SENTENCES[doc_type]
    # Length: mostly a few paragraphs, sometimes a long report (sentences repeat with variation).
    n = rng.choice((3, 4, 5, 6, 8, 10, 12, 16, 24, 36))
    order = list(bank)
    rng.shuffle(order)
    # Long reports run past one bank and quote the others (an appendix of related notes).
    extra = [s for other, sents in DOC_SENTENCES.items() if other != doc_type for s in sents]
    sentences = [fill(order[i] if i < len(order) else rng.choice(extra)) for i in range(n)]
    paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    return Text("\n\n".join(paragraphs), fill.pii)


def extractive_summary(text: str, max_words: int) -> str:
    """Leading sentences up to `max_words` words, the first one truncated if alone it is longer."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    out: list[str] = []
    count = 0
    for sentence in sentences:
        words = sentence.split()
        if count + len(words) > max_words:
            if not out:
                out.append(" ".join(words[:max_words]))
            break
        out.append(sentence)
        count += len(words)
    return " ".join(out)
