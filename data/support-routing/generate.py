#!/usr/bin/env python3
"""Generate the customer-support routing demo dataset (support-routing.jsonl).

shoal ships this small, synthetic dataset so that the README's main command can fine-tune a
tiny model and show its loss falling without downloading anything. Each example is one
customer message and the team it should be routed to:

    {"prompt": "Customer: <message>\\nRoute:", "completion": " billing"}

Ten routes (billing, refund, technical, shipping, account, cancel, sales, fraud, returns,
feedback); messages are built from per-route templates, slots (products, order numbers,
amounts, dates, names, devices), greetings, sign-offs, tones and the occasional typo, so no
two lines are the same and a model has to read the message, not memorise it. Deterministic:
the same seed gives the same bytes (python3 generate.py [--seed 7] [--n 2200]). The output is
committed; CI never runs this script. Stdlib only.
"""
import argparse
import json
import os
import random

PRODUCTS = ["laptop", "headphones", "coffee maker", "phone case", "standing desk", "monitor",
            "keyboard", "blender", "backpack", "smartwatch", "desk lamp", "air purifier",
            "running shoes", "tablet", "webcam", "router", "vacuum cleaner", "printer"]
PLANS = ["Basic", "Plus", "Pro", "Team", "Business", "Family"]
DEVICES = ["iPhone", "Android phone", "Windows laptop", "MacBook", "Chromebook", "iPad",
           "smart TV", "Linux desktop"]
APPS = ["the app", "the website", "the desktop client", "the mobile app", "the web dashboard"]
CARRIERS = ["UPS", "FedEx", "DHL", "the postal service", "your courier"]
NAMES = ["Anna", "Ben", "Chen", "Dana", "Elif", "Farid", "Grace", "Hiro", "Ines", "José",
         "Kofi", "Lena", "Marta", "Nikhil", "Olga", "Priya", "Rafael", "Sofia", "Tom", "Zoë"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
CURRENCIES = ["$", "€", "£"]
GREETINGS = ["", "", "", "Hi, ", "Hello, ", "Hey, ", "Good morning, ", "Hi there, ",
             "Hello team, ", "Dear support, "]
SIGNOFFS = ["", "", "", " Thanks.", " Thank you!", " Thanks in advance.", " Please help.",
            " Regards, {name}.", " Cheers, {name}", " Any update would be appreciated."]

ROUTES = {
    "billing": [
        "I was charged twice for my {plan} subscription this month.",
        "my invoice for {month} shows {amount} but my plan costs less",
        "Why did my card get charged {amount} on {day}?",
        "I need a copy of my invoice for {month} for my accountant.",
        "Can I change the credit card used for my {plan} plan?",
        "the payment for order {order} failed but the money left my account",
        "There is a charge of {amount} I don't recognise from your company.",
        "How do I add our VAT number to future invoices?",
        "my bank statement shows a pending charge of {amount} from you",
        "I was billed for the {plan} plan but I'm on {plan2}.",
        "Can I pay annually instead of monthly?",
        "the billing address on my invoices is wrong, how do I update it",
        "You charged me the old price of {amount} after the discount.",
    ],
    "refund": [
        "I'd like a refund for order {order}, the {product} never worked.",
        "When will I get my refund of {amount}? It has been {n} days.",
        "I returned the {product} two weeks ago and still no refund.",
        "please refund the {amount} you charged by mistake",
        "Can I get my money back for the {plan} plan? I cancelled on {day}.",
        "The refund for order {order} went to an old card, can you resend it?",
        "You promised a partial refund of {amount} for the late delivery.",
        "I got only half of my refund for order {order}.",
        "how long does a refund take to show up on my card",
        "I want my money back, the {product} is not as described.",
    ],
    "technical": [
        "{app} crashes every time I open it on my {device}.",
        "I can't log in on {app}, it just spins forever.",
        "The sync between my {device} and {app} stopped working.",
        "getting error code {code} when I try to upload files",
        "My {product} won't connect to wifi after the update.",
        "{app} is really slow since yesterday, pages take a minute to load.",
        "The export button does nothing on my {device}.",
        "notifications stopped working on {app}",
        "The {product} firmware update failed halfway and now it won't turn on.",
        "I keep getting logged out of {app} every few minutes.",
        "the integration with our calendar throws error {code}",
        "Video calls in {app} freeze after a few seconds on my {device}.",
        "my {product} shows a blinking red light and does nothing",
    ],
    "shipping": [
        "Where is my order {order}? It was supposed to arrive {day}.",
        "the tracking number for order {order} hasn't updated in {n} days",
        "{carrier} says my {product} was delivered but it's not here.",
        "Can you ship order {order} to a different address?",
        "How long does shipping to Canada usually take?",
        "My package is stuck in customs, what should I do?",
        "do you offer express delivery for the {product}",
        "The box arrived but the {product} inside was missing.",
        "Order {order} shows shipped but {carrier} has no record of it.",
        "Can I pick up my order instead of having it delivered?",
        "my delivery was left at the wrong house",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email address on my account?",
        "please merge my two accounts, I signed up twice by mistake",
        "I want to add my colleague {name} to our {plan} team account.",
        "How can I change my username?",
        "my account got locked after too many login attempts",
        "I need to update the phone number for two-factor login.",
        "Can you delete all my personal data from my account?",
        "How do I download a copy of my account data?",
        "I lost access to my authenticator app, how do I get back in?",
        "Please transfer ownership of the team account to {name}.",
    ],
    "cancel": [
        "I want to cancel my {plan} subscription.",
        "please cancel my account at the end of this billing period",
        "How do I stop the automatic renewal?",
        "Cancel order {order} please, I ordered the wrong {product}.",
        "I'd like to end my membership, it's too expensive for me now.",
        "can you cancel my {plan} plan before it renews on {day}",
        "We are closing the company, please cancel all our licenses.",
        "I no longer need the service, how do I unsubscribe?",
        "Please cancel the order I placed {day}, I found it cheaper elsewhere.",
        "stop my subscription immediately",
    ],
    "sales": [
        "Do you offer discounts for nonprofits?",
        "We're a team of {n} people, can we get a quote for the {plan} plan?",
        "What's the difference between the {plan} and {plan2} plans?",
        "do you have bulk pricing if we buy {n} units of the {product}",
        "I'd like to book a demo for my company.",
        "Is there a student discount on the {plan} plan?",
        "Can we get an invoice-based enterprise contract?",
        "Are you planning a sale on the {product} soon?",
        "what would it cost to upgrade our {n} seats to {plan}",
        "Do you sell gift cards?",
        "Can I try the {plan} plan for free before buying?",
    ],
    "fraud": [
        "Someone logged into my account from another country, I didn't do that.",
        "I got an email asking for my password that looks like it's from you, is it real?",
        "There are orders on my account I never placed, like order {order}.",
        "my card was used to buy {a_product} on your site without my permission",
        "I think my account was hacked, the email was changed to one I don't know.",
        "Someone called me claiming to be your support and asked for my card number.",
        "I received a text with a link to reset my password that I didn't request",
        "unknown device {device} appeared in my login history",
        "Report: a website is selling fake copies of the {product} using your brand.",
    ],
    "returns": [
        "How do I return the {product} from order {order}?",
        "I need a return label for my {product}.",
        "can I exchange the {product} for a different color",
        "The {product} arrived damaged, I want to send it back.",
        "What is your return policy for opened items?",
        "I'd like to swap my {product} for a bigger size.",
        "Is it too late to return something I bought in {month}?",
        "the {product} I got is the wrong model, how do I return it",
        "Do I have to pay for return shipping on order {order}?",
        "Where do I drop off my return for order {order}?",
    ],
    "feedback": [
        "Just wanted to say {name} from your team was incredibly helpful!",
        "Your new {app} design is confusing, I liked the old one better.",
        "It would be great if {app} had a dark mode.",
        "The {product} is fantastic, best purchase this year.",
        "suggestion: let us export reports as spreadsheets",
        "I love the service but the emails are too frequent.",
        "Your checkout process has too many steps.",
        "Please add support for more languages in {app}.",
        "great job on the latest update, everything feels faster",
        "The instructions that came with the {product} were hard to follow.",
    ],
}

TYPO_PAIRS = [("the", "teh"), ("receive", "recieve"), ("my", "my"), ("please", "pls"),
              ("you", "u"), ("order", "oder"), ("account", "acount")]


def fill(rng, template):
    plan = rng.choice(PLANS)
    plan2 = rng.choice([p for p in PLANS if p != plan])
    cur = rng.choice(CURRENCIES)
    product = rng.choice(PRODUCTS)
    plural = product.endswith("s") and not product.endswith("ss")
    a_product = ("a pair of " if plural else "an " if product[0] in "aeiou" else "a ") + product
    amount = f"{cur}{rng.randint(5, 899)}.{rng.choice(['00', '99', '49', '50', '95'])}"
    if cur == "€" and rng.random() < 0.5:
        amount = amount[1:].replace(".", ",") + " €"
    return template.format(
        plan=plan, plan2=plan2, amount=amount, product=product, a_product=a_product,
        order=f"#{rng.randint(10000, 99999)}", day=rng.choice(DAYS),
        month=rng.choice(MONTHS), n=rng.randint(2, 40), name=rng.choice(NAMES),
        device=rng.choice(DEVICES), app=rng.choice(APPS), carrier=rng.choice(CARRIERS),
        code=f"{rng.choice(['E', 'ERR-', '0x'])}{rng.randint(100, 9999)}")


def message(rng, template):
    body = fill(rng, template)
    greet = rng.choice(GREETINGS)
    if greet and body[0].isupper() and not body.startswith("I ") and not body.startswith("I'"):
        body = body[0].lower() + body[1:]
    if rng.random() < 0.05:
        body = body.rstrip(".!?") + rng.choice(["!!", "??", "...", " asap"])
    signoff = rng.choice(SIGNOFFS).format(name=rng.choice(NAMES))
    if signoff and body[-1] not in ".!?":
        body += "."
    text = greet + body + signoff
    r = rng.random()
    if r < 0.08:
        text = text.lower()
    elif r < 0.11:
        text = text.upper()
    if rng.random() < 0.07:
        a, b = rng.choice(TYPO_PAIRS)
        text = text.replace(f" {a} ", f" {b} ", 1)
    return text[0].upper() + text[1:] if greet else text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n", type=int, default=2200)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "support-routing.jsonl"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    routes = sorted(ROUTES)
    seen, lines = set(), []
    while len(lines) < args.n:
        route = routes[len(lines) % len(routes)]  # balanced classes, shuffled below
        text = message(rng, rng.choice(ROUTES[route]))
        if text in seen:
            continue
        seen.add(text)
        lines.append(json.dumps({"prompt": f"Customer: {text}\nRoute:",
                                 "completion": f" {route}"}, ensure_ascii=False,
                                separators=(",", ":")))
    rng.shuffle(lines)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} examples, {os.path.getsize(args.out)} bytes to {args.out}")


if __name__ == "__main__":
    main()
