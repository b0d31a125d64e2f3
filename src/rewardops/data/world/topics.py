"""Advice topics for the instruction-following family.

Each topic has a prompt phrase, a key word that appears in at least two sentences (for "do not
use the word X" constraints) and a replacement that keeps the sentences grammatical. Sentences
end with a period and contain no other sentence-ending punctuation, so sentences can be counted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str  # as in "give me tips on {name}"
    title: str
    key: str
    alt: str
    sentences: tuple[str, ...]


TOPICS = (
    Topic("getting better sleep", "Better sleep", "sleep", "rest", (
        "Try to go to sleep and wake up at the same time every day.",
        "Keep your bedroom cool, dark and quiet.",
        "Avoid caffeine in the late afternoon and evening.",
        "Put screens away about an hour before you sleep.",
        "A short walk during the day can improve your sleep at night.",
        "If you cannot sleep after twenty minutes, get up and read for a while.",
        "Keep naps short and early in the day.")),
    Topic("saving money", "Saving money", "money", "cash", (
        "Write down where your money goes for one month.",
        "Set up an automatic transfer to a savings account on payday.",
        "Cook at home more often instead of buying lunch.",
        "Cancel subscriptions you no longer use.",
        "Wait a day before any large purchase to see if you still want it.",
        "Compare prices before you spend money on anything big.",
        "Keep a small emergency fund so surprises do not turn into debt.")),
    Topic("learning a new language", "Language learning", "words", "phrases", (
        "Learn a handful of new words every day.",
        "Write the new words on flashcards and review them often.",
        "Listen to podcasts or music in the language you are learning.",
        "Find a conversation partner and speak from the very first week.",
        "Read simple stories and underline words you do not know.",
        "Set a small daily goal that you can keep on busy days.",
        "Do not worry about mistakes because they show you are trying.")),
    Topic("staying focused while working", "Staying focused", "phone", "mobile", (
        "Put your phone in another room while you work.",
        "Work in blocks of about twenty five minutes with short breaks.",
        "Write down the one task that matters most today.",
        "Turn off notifications on your phone and computer.",
        "Close browser tabs you do not need right now.",
        "Keep a notepad nearby for stray thoughts so you can return to them later.",
        "Tidy your desk before you start.")),
    Topic("growing tomatoes", "Growing tomatoes", "plants", "seedlings", (
        "Start the plants indoors about six weeks before the last frost.",
        "Give the plants at least six hours of direct sun a day.",
        "Water deeply at the base rather than on the leaves.",
        "Support the stems with stakes or cages as they grow.",
        "Add mulch to keep the soil moist and warm.",
        "Pinch off side shoots to direct energy into the fruit.",
        "Feed young plants with a gentle compost tea.")),
    Topic("training for a first 5k", "Your first 5k", "run", "jog", (
        "Start with short intervals that mix walking and running.",
        "Run three times a week and rest on the days in between.",
        "Increase your distance slowly from week to week.",
        "Wear comfortable shoes that fit well.",
        "Warm up with a brisk walk before every run.",
        "Keep the pace easy enough that you could hold a conversation.",
        "Sleep well and drink enough water during training.")),
    Topic("cooking fluffy rice", "Fluffy rice", "water", "liquid", (
        "Rinse the rice until the water runs clear.",
        "Use about one and a half cups of water for each cup of rice.",
        "Bring the water to a boil before you lower the heat.",
        "Keep the lid on while the rice simmers.",
        "Let the pot rest off the heat for ten minutes.",
        "Fluff the grains gently with a fork before serving.",
        "Add a pinch of salt for better flavour.")),
    Topic("public speaking", "Public speaking", "audience", "listeners", (
        "Know your opening lines by heart.",
        "Think about what your audience already knows.",
        "Practise out loud several times before the day.",
        "Make eye contact with different parts of the audience.",
        "Slow down and pause after important points.",
        "Use a simple story to make your main idea stick.",
        "Arrive early to check the room and the equipment.")),
    Topic("keeping houseplants alive", "Houseplant care", "light", "sunlight", (
        "Check how much light each plant needs before choosing a spot.",
        "Water only when the top of the soil feels dry.",
        "Use pots with drainage holes so roots do not rot.",
        "Rotate plants now and then so they get even light.",
        "Wipe dust off the leaves every few weeks.",
        "Feed them lightly during spring and summer.",
        "Watch the leaves for signs of too much or too little water.")),
    Topic("writing a strong CV", "Writing a CV", "experience", "background", (
        "Put your most relevant experience near the top.",
        "Describe results rather than just listing duties.",
        "Keep the layout clean and easy to scan.",
        "Tailor the CV to each job you apply for.",
        "Check spelling and grammar carefully.",
        "Leave out experience that has nothing to do with the role.",
        "Keep it to two pages at most.")),
    Topic("reducing everyday stress", "Reducing stress", "breaks", "pauses", (
        "Take short breaks to stretch and breathe slowly.",
        "Spend some time outdoors every day.",
        "Write down what is worrying you and one small next step.",
        "Limit how often you check the news.",
        "Schedule breaks in your calendar so they actually happen.",
        "Talk to a friend when things feel heavy.",
        "Keep a regular bedtime.")),
    Topic("travelling on a budget", "Budget travel", "tickets", "fares", (
        "Book train and plane tickets well in advance.",
        "Travel outside the busy holiday season.",
        "Stay in hostels or rent a room from locals.",
        "Eat where the locals eat rather than near the big sights.",
        "Look for city passes that bundle museum tickets.",
        "Walk or use public transport instead of taxis.",
        "Carry a refillable water bottle.")),
    Topic("brewing good coffee at home", "Coffee at home", "cup", "mug", (
        "Buy whole beans and grind them just before brewing.",
        "Use water that is hot but not boiling.",
        "Weigh the coffee so every cup tastes the same.",
        "Clean your equipment regularly to avoid bitter flavours.",
        "Store beans in an airtight container away from light.",
        "Warm the cup before you pour.",
        "Experiment with the grind size until you like the taste.")),
    Topic("looking after a bicycle", "Bike care", "chain", "drivetrain", (
        "Clean and oil the chain every few weeks.",
        "Check the tyre pressure before every ride.",
        "Test the brakes and replace worn pads early.",
        "Keep the bike indoors or under cover.",
        "Wipe the chain after riding in the rain.",
        "Tighten loose bolts before they cause trouble.",
        "Take it for a professional service once a year.")),
    Topic("starting meditation", "Starting meditation", "mind", "thoughts", (
        "Begin with just five minutes a day.",
        "Sit comfortably and notice your breathing.",
        "When your mind wanders, gently bring it back to the breath.",
        "Meditate at the same time each day to build a habit.",
        "Try a guided recording if silence feels hard.",
        "Do not judge yourself when your mind is busy.",
        "Notice how you feel afterwards.")),
    Topic("studying for exams", "Exam preparation", "notes", "summaries", (
        "Make a study plan that covers every topic.",
        "Turn your notes into questions and test yourself.",
        "Study in short sessions with breaks in between.",
        "Explain each topic aloud as if you were teaching it.",
        "Rewrite your notes in your own words.",
        "Do past papers under timed conditions.",
        "Get enough sleep the night before.")),
    Topic("running remote team meetings", "Remote meetings", "meeting", "call", (
        "Share an agenda before the meeting starts.",
        "Start and finish on time.",
        "Ask quieter people for their views by name.",
        "Keep cameras optional unless they truly help.",
        "Write down decisions and owners during the meeting.",
        "Send a short summary afterwards.",
        "Cancel the slot if there is nothing to discuss.")),
    Topic("drinking enough water", "Staying hydrated", "water", "fluids", (
        "Keep a bottle of water on your desk.",
        "Drink a glass of water with every meal.",
        "Eat fruit and vegetables that contain lots of water.",
        "Set reminders if you tend to forget.",
        "Drink more on hot days and when you exercise.",
        "Check that your urine is pale yellow.",
        "Swap some sugary drinks for plain options.")),
    Topic("backing up your computer", "Backing up", "files", "data", (
        "Keep at least two copies of important files.",
        "Store one copy somewhere other than your home.",
        "Schedule backups so they run automatically.",
        "Test that you can actually restore files from the backup.",
        "Use an external drive or a cloud service.",
        "Encrypt backups that contain private information.",
        "Check the backup logs every month.")),
    Topic("adopting a dog", "Adopting a dog", "dog", "puppy", (
        "Think about how much time you can give a dog every day.",
        "Choose a dog whose energy level matches your lifestyle.",
        "Visit local shelters and ask about each animal's history.",
        "Budget for food, vet visits and insurance.",
        "Prepare a quiet space at home before the first day.",
        "Start training with short and positive sessions.",
        "Be patient while your new friend settles in.")),
)

KEYWORDS = ("patience", "routine", "balance", "consistency", "curiosity", "planning", "habit",
            "progress", "courage", "discipline", "creativity", "kindness")
KEYWORD_SENTENCES = (
    "A little {kw} goes a long way.", "{Kw} matters more than most people think.",
    "Never underestimate {kw}.", "In the end it comes down to {kw}.",
    "Think of {kw} as your best friend here.", "Above all, remember {kw}.",
)
START_WORDS = ("Certainly", "Absolutely", "Sure", "Honestly", "Okay", "Well")
END_PHRASES = ("Hope this helps!", "Good luck!", "Any other questions?", "Let me know how it goes.",
               "That is all for now.", "Happy to help further.")
JSON_KEYS = (("title", "tips"), ("topic", "advice"), ("name", "steps"), ("subject", "points"),
             ("heading", "items"))
