"""Connected TikTok shops: their encrypted tokens, the authorization callback, token renewal."""
